package lowbit;

/**
 * A bit-plane operand resident in a {@link Context} (see {@link BitPlanes} and {@code
 * lowbit_bitplane_gemm} in {@code lowbit.h}): a {@code rows × cols} matrix of {@link #bits()}-bit
 * integer codes stored as binary planes, with its per-row code sums, optional per-row zero points
 * (the operand's integer is {@code code − z}) and float32 scales (one per row, or one for the
 * whole matrix). Weights come from {@link Context#uploadBitPlanes} (packed offline from integer
 * codes); activations from {@link Context#quantizeBitPlanes} (per-token quantization on the
 * backend). Multiplied by {@link Context#gemmBitPlanes}. Closing it closes its tensors.
 */
public final class BitPlaneTensor implements AutoCloseable {
    private final Tensor planes;
    private final Tensor sums;
    private final Tensor zeros;
    private final Tensor scales;
    private final int bits;
    private final boolean signed;
    private final long rows;
    private final long cols;
    private final int ld;

    BitPlaneTensor(Tensor planes, Tensor sums, Tensor zeros, Tensor scales, int bits, boolean signed, long rows, long cols) {
        this.planes = planes;
        this.sums = sums;
        this.zeros = zeros;
        this.scales = scales;
        this.bits = bits;
        this.signed = signed;
        this.rows = rows;
        this.cols = cols;
        this.ld = BitPlanes.ld(cols);
    }

    public long rows() {
        return rows;
    }

    public long cols() {
        return cols;
    }

    /** Number of planes (the storage bit width, 1..8). */
    public int bits() {
        return bits;
    }

    /** Two's-complement codes (true) or unsigned codes (false). */
    public boolean isSigned() {
        return signed;
    }

    public boolean hasZeroPoints() {
        return zeros != null;
    }

    /** Words between planes ({@link BitPlanes#ld}). */
    public int ld() {
        return ld;
    }

    /** The packed planes: an S32 tensor of {@code rows × 2·bits·ld} ints (two per 64-bit word). */
    public Tensor planes() {
        return planes;
    }

    /** S32, {@code 1 × rows}: the row sums of the codes. */
    public Tensor sums() {
        return sums;
    }

    /** S32, {@code 1 × rows}, or null. */
    public Tensor zeroPoints() {
        return zeros;
    }

    /** F32, {@code 1 × rows} or {@code 1 × 1}. */
    public Tensor scales() {
        return scales;
    }

    public boolean isClosed() {
        return planes.isClosed();
    }

    @Override
    public void close() {
        planes.close();
        sums.close();
        if (zeros != null) {
            zeros.close();
        }
        scales.close();
    }

    @Override
    public String toString() {
        return "BitPlaneTensor[" + rows + " x " + cols + ", " + bits + (signed ? " signed" : " unsigned") + " planes"
                + (zeros != null ? " + zero points" : "") + (isClosed() ? ", closed" : "") + "]";
    }
}
