package lowbit.model;

/**
 * The keys and values of every layer for the tokens processed so far in one sequence. Create one
 * per sequence with {@link DecoderModel#newKvCache}; {@link #length()} is the number of positions
 * filled, and {@link #reset()} starts a new sequence reusing the memory.
 *
 * <p>Layout, per layer: keys transposed, one array per (KV head, dimension) holding that dimension
 * for every position; values one array of {@code headDim} per (position, KV head). Every inner loop
 * of {@link Attention} then runs over a whole array from index 0, the form HotSpot's C2 (JDK 17)
 * vectorizes; with a variable start offset into a shared array it stays scalar (about 6x slower).
 */
public final class KvCache {
    /** {@code keys[layer][kvHead × headDim + d][position]}. */
    final float[][][] keys;
    /** {@code values[layer][position × kvHeads + kvHead][d]}. */
    final float[][][] values;
    private final int capacity;
    private final int kvHeads;
    private final int headDim;
    private int length;
    /** What happens to keys, values and queries at the cache (quantization, transforms); null: nothing. */
    private Codec codec;

    /**
     * A hook at the cache for KV-cache quantization: {@link #keys} (after RoPE) and {@link #values}
     * rewrite, in place, the rows about to be stored ({@code tokens × kvHeads·headDim}); {@link
     * #queries} rewrites the rotated queries ({@code tokens × heads·headDim}) before they meet the
     * keys, so that a transform of the keys can be undone on the query side. The arrays are copies:
     * the model's own buffers are never changed.
     */
    public interface Codec {
        void keys(int layer, float[] k, int tokens);

        void values(int layer, float[] v, int tokens);

        void queries(int layer, float[] q, int tokens);
    }

    KvCache(int layers, int capacity, int kvHeads, int headDim) {
        this.capacity = capacity;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.keys = new float[layers][kvHeads * headDim][capacity];
        this.values = new float[layers][Math.multiplyExact(capacity, kvHeads)][headDim];
    }

    /** Positions filled. */
    public int length() {
        return length;
    }

    /** Positions this cache can hold. */
    public int capacity() {
        return capacity;
    }

    /** Sets the codec applied from now on (null: store keys and values as they come). */
    public void setCodec(Codec codec) {
        this.codec = codec;
    }

    /** The codec, or null. */
    public Codec codec() {
        return codec;
    }

    /** Forgets all positions. */
    public void reset() {
        length = 0;
    }

    void store(int layer, int firstPos, float[] k, float[] v, int tokens) {
        int kvDim = kvHeads * headDim;
        float[][] kt = keys[layer];
        float[][] vs = values[layer];
        if (codec != null) {
            k = java.util.Arrays.copyOf(k, tokens * kvDim);
            v = java.util.Arrays.copyOf(v, tokens * kvDim);
            codec.keys(layer, k, tokens);
            codec.values(layer, v, tokens);
        }
        for (int t = 0; t < tokens; t++) {
            for (int c = 0; c < kvDim; c++) kt[c][firstPos + t] = k[t * kvDim + c];
            for (int h = 0; h < kvHeads; h++) System.arraycopy(v, t * kvDim + h * headDim, vs[(firstPos + t) * kvHeads + h], 0, headDim);
        }
    }

    void advance(int tokens) {
        length += tokens;
    }
}
