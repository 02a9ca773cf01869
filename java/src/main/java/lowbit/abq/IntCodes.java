package lowbit.abq;

/**
 * A quantized matrix as integer codes: {@code rows × cols} codes stored in {@link #planes()} bit
 * planes (signed two's complement or unsigned), float32 scales and optional integer zero points,
 * one per slot: per row ({@link #group()} == 0) or per (row, group of consecutive columns). The
 * real value of element (r, c) is {@code scale·(code − z)} of its slot.
 */
public final class IntCodes {
    private final int rows;
    private final int cols;
    private final int planes;
    private final boolean signed;
    private final int group;
    private final int[] codes;
    private final float[] scales;
    private final int[] zeros;

    IntCodes(int rows, int cols, int planes, boolean signed, int group, int[] codes, float[] scales, int[] zeros) {
        this.rows = rows;
        this.cols = cols;
        this.planes = planes;
        this.signed = signed;
        this.group = group;
        this.codes = codes;
        this.scales = scales;
        this.zeros = zeros;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    /** Bit planes the codes need (the storage width: bits + 1 with bit balance). */
    public int planes() {
        return planes;
    }

    public boolean isSigned() {
        return signed;
    }

    /** Columns per scale, or 0 for one scale per row. */
    public int group() {
        return group;
    }

    /** Slots per row: 1, or cols / group. */
    public int slotsPerRow() {
        return group == 0 ? 1 : cols / group;
    }

    public int slot(int r, int c) {
        return group == 0 ? r : r * (cols / group) + c / group;
    }

    /** The codes, row-major (a copy). */
    public int[] codes() {
        return codes.clone();
    }

    public int code(int r, int c) {
        return codes[r * cols + c];
    }

    /** Scales, one per slot (a copy). */
    public float[] scales() {
        return scales.clone();
    }

    /** Zero points, one per slot (a copy), or null for symmetric codes. */
    public int[] zeroPoints() {
        return zeros == null ? null : zeros.clone();
    }

    public boolean hasZeroPoints() {
        return zeros != null;
    }

    /** The integer the GEMM multiplies: {@code code − z}. */
    public int value(int r, int c) {
        return codes[r * cols + c] - (zeros == null ? 0 : zeros[slot(r, c)]);
    }

    public float scale(int r, int c) {
        return scales[slot(r, c)];
    }

    /** {@code scale·(code − z)} for every element. */
    public float[] dequantize() {
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                out[r * cols + c] = scale(r, c) * value(r, c);
            }
        }
        return out;
    }

    // ---- storage: bit planes --------------------------------------------------------------------

    /** Bytes of one plane row of {@code cols} codes: {@code ceil(cols / 8)}. */
    public static int planeRowBytes(int cols) {
        return (cols + 7) / 8;
    }

    /**
     * The codes as bit planes ({@link #fromPlanes}'s layout; per-row scales only): for row r and plane
     * i, {@link #planeRowBytes} bytes at {@code (r·planes + i)·planeRowBytes(cols)}; bit {@code c % 8}
     * of byte {@code c / 8} is bit i of the code of column c (two's complement in {@code planes} bits
     * for signed codes); the bits past {@code cols} are zero. {@code planes / 8} bytes per code.
     */
    public byte[] packedPlanes() {
        if (group != 0) throw new IllegalStateException("per-group codes (G" + group + ") have no bit-plane storage; per-row scales only");
        int rb = planeRowBytes(cols);
        byte[] out = new byte[Math.multiplyExact(Math.multiplyExact(rows, planes), rb)];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < planes; i++) {
                int base = (r * planes + i) * rb;
                for (int c = 0; c < cols; c++) {
                    if ((codes[r * cols + c] >> i & 1) != 0) out[base + (c >> 3)] |= (byte) (1 << (c & 7));
                }
            }
        }
        return out;
    }

    /**
     * Per-row codes from their bit planes ({@link #packedPlanes}'s layout), checked as a file's data
     * must be: {@code planes} in 1..8, every scale finite and positive, zero points (null: none) in
     * {@code [−2^16, 2^16]} (the bit-plane GEMM's exactness bound), no bit set past {@code cols}.
     * Any violation is an {@link IllegalArgumentException} naming the row.
     */
    public static IntCodes fromPlanes(int rows, int cols, int planes, boolean signed, byte[] packed, float[] scales, int[] zeros) {
        if (rows < 1 || cols < 1) throw new IllegalArgumentException("codes need rows and columns >= 1, got " + rows + " x " + cols);
        if (planes < 1 || planes > 8) throw new IllegalArgumentException("codes take 1..8 bit planes, got " + planes);
        int rb = planeRowBytes(cols);
        long need = (long) rows * planes * rb;
        if (packed == null || packed.length != need) {
            throw new IllegalArgumentException(rows + " rows of " + planes + " planes of " + cols + " codes take " + need + " bytes, got "
                    + (packed == null ? "none" : packed.length));
        }
        if (scales == null || scales.length != rows) {
            throw new IllegalArgumentException("one scale per row: " + rows + " needed, got " + (scales == null ? "none" : scales.length));
        }
        if (zeros != null && zeros.length != rows) {
            throw new IllegalArgumentException("one zero point per row: " + rows + " needed, got " + zeros.length);
        }
        int[] codes = new int[Math.multiplyExact(rows, cols)];
        int tail = cols & 7;
        for (int r = 0; r < rows; r++) {
            if (!(scales[r] > 0) || !Float.isFinite(scales[r])) throw new IllegalArgumentException("row " + r + " has scale " + scales[r]);
            if (zeros != null && Math.abs((long) zeros[r]) > 1 << 16) {
                throw new IllegalArgumentException("row " + r + " has zero point " + zeros[r] + ", outside [-65536, 65536]");
            }
            for (int i = 0; i < planes; i++) {
                int base = (r * planes + i) * rb;
                if (tail != 0 && (packed[base + rb - 1] & 0xFF) >> tail != 0) {
                    throw new IllegalArgumentException("row " + r + ", plane " + i + " has bits set past column " + cols);
                }
                for (int c = 0; c < cols; c++) {
                    if ((packed[base + (c >> 3)] >> (c & 7) & 1) != 0) codes[r * cols + c] |= 1 << i;
                }
            }
            if (signed) {
                int shift = 32 - planes;
                for (int c = r * cols; c < (r + 1) * cols; c++) codes[c] = codes[c] << shift >> shift;
            }
        }
        return new IntCodes(rows, cols, planes, signed, 0, codes, scales.clone(), zeros == null ? null : zeros.clone());
    }
}
