package lowbit;

/**
 * DGQ (dual-grained) A8W4 weights resident in a {@link Context}: {@code n × k} 4-bit codes packed
 * as {@link DType#S4} rows, one unsigned integer group scale {@code S2 ∈ [1, 255]} per group of
 * {@link #group()} input columns, optional INT8 zero points, and one float channel scale per output
 * row. The expanded INT8 weight is {@code W8 = q·S2} (signed codes, no zero points) or {@code
 * W8 = (q − z)·S2} (unsigned codes), {@code |W8| ≤ 127}, and the real weight is {@code
 * channelScale[j]·W8[j][c]} (see {@code lowbit_gemm_dgq} in {@code lowbit.h}). Built by {@link
 * Context#uploadDgq}, which checks the range; multiplied by {@link Context#gemmDgq}.
 */
public final class DgqWeights implements AutoCloseable {
    private final Tensor codes;
    private final Tensor groupScales;
    private final Tensor zeroPoints;
    private final Tensor channelScales;
    private final int group;

    DgqWeights(Tensor codes, Tensor groupScales, Tensor zeroPoints, Tensor channelScales, int group) {
        this.codes = codes;
        this.groupScales = groupScales;
        this.zeroPoints = zeroPoints;
        this.channelScales = channelScales;
        this.group = group;
    }

    /** Output channels (N). */
    public long rows() {
        return codes.rows();
    }

    /** Input channels (K). */
    public long cols() {
        return codes.cols();
    }

    /** Input columns per group scale (G). */
    public int group() {
        return group;
    }

    /** True for unsigned codes with zero points, false for signed INT4 codes. */
    public boolean hasZeroPoints() {
        return zeroPoints != null;
    }

    public boolean isClosed() {
        return codes.isClosed();
    }

    Tensor codes() {
        return codes;
    }

    Tensor groupScales() {
        return groupScales;
    }

    Tensor zeroPoints() {
        return zeroPoints;
    }

    Tensor channelScales() {
        return channelScales;
    }

    @Override
    public void close() {
        codes.close();
        groupScales.close();
        if (zeroPoints != null) {
            zeroPoints.close();
        }
        channelScales.close();
    }

    @Override
    public String toString() {
        return "DgqWeights[" + rows() + " x " + cols() + ", G=" + group + (hasZeroPoints() ? ", UINT4+zero" : ", INT4")
                + (isClosed() ? ", closed" : "") + "]";
    }
}
