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
}
