package lowbit.model;

/**
 * The storage of a {@link KvCache} whose codec quantizes to at most 4 bits ({@link
 * KvCache.GroupQuantizer}): per layer, keys and values as packed codes, two per byte (element {@code
 * c} of a row in byte {@code c/2}, low nibble when {@code c} is even; rows of {@code kvHeads·headDim}
 * codes, position-major), and per group of {@code groupSize} consecutive elements of a row its scale
 * {@code s} and zero point {@code z} in FP64. A stored element reads back as {@code (float) ((q − z)·s)}
 * — the value the codec's float (simulated) mode stores, bit for bit, since the codes, {@code s}
 * and {@code z} are the ones that value is computed from.
 *
 * <p>The scale and zero point stay FP64 because they are FP64 in the quantizer being reproduced
 * (the calibration's fake quantizer): a float32 scale would change the dequantized values, and the
 * zero point {@code rint(−lo/s)} is unbounded for a group of (nearly) equal values. That is 16 bytes
 * per group: with groups of 64 (one per head of SmolLM2), 48 bytes per 64 elements where float32
 * takes 256 ({@link #bytes}: 18.75%).
 *
 * <p>{@link #keys} and {@link #values} dequantize positions {@code 0 .. length−1} of a layer into
 * the float layout {@link Attention} reads (keys transposed per dimension, values per position and
 * head), once per attention call of the layer.
 */
final class PackedKvStore {
    private final int capacity;
    private final int kvHeads;
    private final int headDim;
    private final int groupSize;
    private final int rowBytes;
    private final int groupsPerRow;
    /** {@code [layer][0 keys, 1 values]}: codes, {@code capacity × rowBytes}. */
    private final byte[][][] codes;
    /** {@code [layer][0 keys, 1 values]}: scales, {@code capacity × groupsPerRow}. */
    private final double[][][] scales;
    /** {@code [layer][0 keys, 1 values]}: zero points, {@code capacity × groupsPerRow}. */
    private final double[][][] zeros;

    PackedKvStore(int layers, int capacity, int kvHeads, int headDim, int groupSize) {
        int kvDim = kvHeads * headDim;
        if (groupSize < 1 || kvDim % groupSize != 0) {
            throw new IllegalArgumentException("KV rows of " + kvDim + " values are not whole groups of " + groupSize);
        }
        this.capacity = capacity;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.groupSize = groupSize;
        this.rowBytes = (kvDim + 1) / 2;
        this.groupsPerRow = kvDim / groupSize;
        this.codes = new byte[layers][2][Math.multiplyExact(capacity, rowBytes)];
        this.scales = new double[layers][2][Math.multiplyExact(capacity, groupsPerRow)];
        this.zeros = new double[layers][2][Math.multiplyExact(capacity, groupsPerRow)];
    }

    int groupSize() {
        return groupSize;
    }

    /** Bytes of codes, scales and zero points held (for every layer and position of the capacity). */
    long bytes() {
        return (long) codes.length * 2 * ((long) capacity * rowBytes + 16L * capacity * groupsPerRow);
    }

    /**
     * Stores {@code tokens} rows from {@code firstPos}: {@code kind} 0 keys, 1 values; {@code q} one
     * code per element in {@code [0, 16)}, {@code s} and {@code z} one per group.
     */
    void store(int layer, int kind, int firstPos, int tokens, byte[] q, double[] s, double[] z) {
        int kvDim = kvHeads * headDim;
        byte[] c = codes[layer][kind];
        for (int t = 0; t < tokens; t++) {
            int row = (firstPos + t) * rowBytes;
            java.util.Arrays.fill(c, row, row + rowBytes, (byte) 0);
            for (int e = 0; e < kvDim; e++) {
                int code = q[t * kvDim + e];
                if (code < 0 || code > 15) throw new IllegalArgumentException("KV code " + code + " at row " + t + ", element " + e + " is not 4 bits");
                c[row + e / 2] |= (byte) ((e & 1) == 0 ? code : code << 4);
            }
        }
        System.arraycopy(s, 0, scales[layer][kind], firstPos * groupsPerRow, tokens * groupsPerRow);
        System.arraycopy(z, 0, zeros[layer][kind], firstPos * groupsPerRow, tokens * groupsPerRow);
    }

    /** {@code (float) ((q − z)·s)} of element {@code e} of row {@code pos}. */
    private float value(byte[] c, double[] s, double[] z, int pos, int e) {
        int b = c[pos * rowBytes + e / 2];
        int q = (e & 1) == 0 ? b & 0xF : (b >> 4) & 0xF;
        int g = pos * groupsPerRow + e / groupSize;
        return (float) ((q - z[g]) * s[g]);
    }

    /** Keys of positions {@code 0 .. length−1}: {@code [kvHead × headDim + d][position]}. */
    float[][] keys(int layer, int length) {
        int kvDim = kvHeads * headDim;
        byte[] c = codes[layer][0];
        double[] s = scales[layer][0], z = zeros[layer][0];
        float[][] k = new float[kvDim][length];
        for (int p = 0; p < length; p++) {
            for (int e = 0; e < kvDim; e++) k[e][p] = value(c, s, z, p, e);
        }
        return k;
    }

    /** Values of positions {@code 0 .. length−1}: {@code [position × kvHeads + kvHead][d]}. */
    float[][] values(int layer, int length) {
        byte[] c = codes[layer][1];
        double[] s = scales[layer][1], z = zeros[layer][1];
        float[][] v = new float[length * kvHeads][headDim];
        for (int p = 0; p < length; p++) {
            for (int h = 0; h < kvHeads; h++) {
                float[] row = v[p * kvHeads + h];
                for (int d = 0; d < headDim; d++) row[d] = value(c, s, z, p, h * headDim + d);
            }
        }
        return v;
    }
}
