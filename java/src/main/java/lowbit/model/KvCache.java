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
 *
 * <p>With a {@link Codec} whose {@link Codec#packing} is set (e.g. FlatQuant's KV4), the cache
 * holds packed codes with per-group scales and zero points instead ({@link PackedKvStore}, about
 * 4/32 of the float bytes plus the group parameters; {@link #bytes}) and attention reads them
 * dequantized, the same float values a float cache under the codec's simulated mode holds.
 */
public final class KvCache {
    /** {@code keys[layer][kvHead × headDim + d][position]}; null when packed. */
    private float[][][] keys;
    /** {@code values[layer][position × kvHeads + kvHead][d]}; null when packed. */
    private float[][][] values;
    /** The packed storage, or null for floats. */
    private PackedKvStore packed;
    private final int layers;
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

        /**
         * The quantizer to store packed codes with, or null (the default): the cache stores, as
         * floats, what {@link #keys} and {@link #values} leave.
         */
        default GroupQuantizer packing() {
            return null;
        }
    }

    /**
     * A codec's K/V quantizer in the form a packed cache stores: asymmetric codes of at most 4 bits
     * with one scale {@code s} and zero point {@code z} (FP64) per group of {@link #groupSize}
     * consecutive elements of a token's row, where element code {@code q} stands for {@code (float)
     * ((q − z)·s)}. {@link #quantizeKeys} and {@link #quantizeValues} do everything the codec's
     * {@link Codec#keys} and {@link Codec#values} do (transforms included) up to that value; they may
     * overwrite the input rows.
     */
    public interface GroupQuantizer {
        int groupSize();

        /** Codes ({@code tokens × kvDim}, each in {@code [0, 16)}), scales and zero points ({@code tokens × kvDim / groupSize}) of the keys. */
        void quantizeKeys(int layer, float[] k, int tokens, byte[] codes, double[] scales, double[] zeros);

        /** The same for the values. */
        void quantizeValues(int layer, float[] v, int tokens, byte[] codes, double[] scales, double[] zeros);
    }

    KvCache(int layers, int capacity, int kvHeads, int headDim) {
        this(layers, capacity, kvHeads, headDim, null);
    }

    /** A cache whose storage suits {@code codec} (packed when it has a {@link Codec#packing}), with the codec set. */
    KvCache(int layers, int capacity, int kvHeads, int headDim, Codec codec) {
        this.layers = layers;
        this.capacity = capacity;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.codec = codec;
        allocate(codec == null ? null : codec.packing());
    }

    private void allocate(GroupQuantizer g) {
        if (g == null) {
            packed = null;
            keys = new float[layers][kvHeads * headDim][capacity];
            values = new float[layers][Math.multiplyExact(capacity, kvHeads)][headDim];
        } else {
            keys = null;
            values = null;
            packed = new PackedKvStore(layers, capacity, kvHeads, headDim, g.groupSize());
        }
    }

    /** Positions filled. */
    public int length() {
        return length;
    }

    /** Positions this cache can hold. */
    public int capacity() {
        return capacity;
    }

    /** True when the cache holds packed codes rather than floats. */
    public boolean isPacked() {
        return packed != null;
    }

    /**
     * Bytes of key and value storage this cache holds (all layers, the whole capacity): {@code 8 ·
     * layers · capacity · kvDim} for floats; for packed codes {@code 2 · layers · capacity ·
     * (⌈kvDim/2⌉ + 16 · kvDim/groupSize)}.
     */
    public long bytes() {
        if (packed != null) return packed.bytes();
        return 2L * 4 * layers * capacity * kvHeads * headDim;
    }

    /**
     * Sets the codec applied from now on (null: store keys and values as they come). A codec that
     * needs the other storage (packed vs floats, or another group size) replaces the storage, which
     * only an empty cache ({@link #length} 0) allows.
     */
    public void setCodec(Codec codec) {
        GroupQuantizer g = codec == null ? null : codec.packing();
        boolean same = g == null ? packed == null : packed != null && packed.groupSize() == g.groupSize();
        if (!same) {
            if (length != 0) {
                throw new IllegalStateException("the codec needs " + (g == null ? "a float" : "a packed") + " cache; this one holds " + length
                        + " positions already (set the codec on an empty cache)");
            }
            allocate(g);
        }
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
        if (packed != null) {
            GroupQuantizer g = codec.packing();
            int groups = tokens * (kvDim / g.groupSize());
            byte[] q = new byte[tokens * kvDim];
            double[] s = new double[groups], z = new double[groups];
            g.quantizeKeys(layer, java.util.Arrays.copyOf(k, tokens * kvDim), tokens, q, s, z);
            packed.store(layer, 0, firstPos, tokens, q, s, z);
            g.quantizeValues(layer, java.util.Arrays.copyOf(v, tokens * kvDim), tokens, q, s, z);
            packed.store(layer, 1, firstPos, tokens, q, s, z);
            return;
        }
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

    /** Keys of {@code layer} for attention over positions {@code 0 .. length−1}: {@code [kvHead × headDim + d][position]} (at least {@code length} positions). */
    float[][] keysForAttention(int layer, int length) {
        return packed != null ? packed.keys(layer, length) : keys[layer];
    }

    /** Values of {@code layer} for attention over positions {@code 0 .. length−1}: {@code [position × kvHeads + kvHead][d]}. */
    float[][] valuesForAttention(int layer, int length) {
        return packed != null ? packed.values(layer, length) : values[layer];
    }

    void advance(int tokens) {
        length += tokens;
    }
}
