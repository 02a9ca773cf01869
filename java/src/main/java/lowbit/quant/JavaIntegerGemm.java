package lowbit.quant;

/**
 * The pure-Java integer GEMM with lowbit.h's dequantizing epilogue: {@code acc[i][j] = sum_k
 * A[i][k] * B[j][k]} in exact int32, then {@code out[i*N + j] = ((float) acc * aScale[i or 0]) *
 * bScale[j or 0] (+ bias[j])} in float32 without FMA. The reference the native backends must match
 * bit for bit.
 */
final class JavaIntegerGemm {
    private JavaIntegerGemm() {}

    /**
     * @param a activations, M x K (S8 or S4)
     * @param b weights, N x K (S8 or S4), one output channel per row
     * @param aScales 1 (per-tensor) or M (per-token) activation scales
     * @param bScales 1 (per-tensor) or N (per-output-channel) weight scales
     * @param bias N values, or null
     * @param out M x N, row-major, every element written
     */
    static void gemmDequant(PackedMatrix a, PackedMatrix b, float[] aScales, float[] bScales, float[] bias, float[] out) {
        int m = a.rows;
        int n = b.rows;
        int k = a.cols;
        if (b.cols != k) {
            throw new ShapeMismatchException("GEMM inner dimensions differ: A has K=" + k + ", B has K=" + b.cols);
        }
        if (aScales.length != 1 && aScales.length != m) {
            throw new ShapeMismatchException("activation scales: expected 1 or " + m + ", got " + aScales.length);
        }
        if (bScales.length != 1 && bScales.length != n) {
            throw new ShapeMismatchException("weight scales: expected 1 or " + n + ", got " + bScales.length);
        }
        if (bias != null && bias.length != n) {
            throw new ShapeMismatchException("bias: expected " + n + " values, got " + bias.length);
        }
        if (out.length < (long) m * n) {
            throw new ShapeMismatchException("output: expected " + ((long) m * n) + " values, got " + out.length);
        }
        int[] bAll = new int[n * k];
        int[] row = new int[k];
        for (int j = 0; j < n; j++) {
            b.unpackRow(j, row);
            System.arraycopy(row, 0, bAll, j * k, k);
        }
        for (int i = 0; i < m; i++) {
            a.unpackRow(i, row);
            float as = aScales.length == 1 ? aScales[0] : aScales[i];
            for (int j = 0; j < n; j++) {
                int acc = 0;
                int base = j * k;
                for (int c = 0; c < k; c++) {
                    acc += row[c] * bAll[base + c];
                }
                float bs = bScales.length == 1 ? bScales[0] : bScales[j];
                float v = ((float) acc * as) * bs;
                out[i * n + j] = bias == null ? v : v + bias[j];
            }
        }
    }
}
