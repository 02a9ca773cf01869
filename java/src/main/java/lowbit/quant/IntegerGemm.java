package lowbit.quant;

/**
 * The seam between the quantized layer and whatever executes its integer work: lowbit.h's {@code
 * lowbit_gemm_dequant}. {@code acc[i][j] = sum_k A[i][k] * B[j][k]} in exact int32 arithmetic,
 * then {@code out[i*N + j] = ((float) acc * aScale) * bScales[j or 0] (+ bias[j])} in float32
 * without FMA. A native implementation replaces {@link JavaIntegerGemm} here and nowhere else.
 */
interface IntegerGemm {
    /**
     * @param a activations, M x K (S8 or S4)
     * @param b weights, N x K (S8 or S4), one output channel per row
     * @param aScale the per-tensor activation scale
     * @param bScales 1 (per-tensor) or N (per-output-channel) weight scales
     * @param bias N values, or null
     * @param out M x N, row-major, every element written
     */
    void gemmDequant(PackedMatrix a, PackedMatrix b, float aScale, float[] bScales, float[] bias, float[] out);
}
