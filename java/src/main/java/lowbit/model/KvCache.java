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

    /** Forgets all positions. */
    public void reset() {
        length = 0;
    }

    void store(int layer, int firstPos, float[] k, float[] v, int tokens) {
        int kvDim = kvHeads * headDim;
        float[][] kt = keys[layer];
        float[][] vs = values[layer];
        for (int t = 0; t < tokens; t++) {
            for (int c = 0; c < kvDim; c++) kt[c][firstPos + t] = k[t * kvDim + c];
            for (int h = 0; h < kvHeads; h++) System.arraycopy(v, t * kvDim + h * headDim, vs[(firstPos + t) * kvHeads + h], 0, headDim);
        }
    }

    void advance(int tokens) {
        length += tokens;
    }
}
