package lowbit.model;

/** Element-wise pieces of the decoder: RMSNorm, residual add, SiLU gating. */
final class VectorOps {
    private VectorOps() {}

    /** {@code out[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight} for each of {@code rows} rows. */
    static void rmsNorm(float[] x, float[] weight, float eps, int rows, int dim, float[] out) {
        for (int r = 0; r < rows; r++) {
            int o = r * dim;
            double sumSquares = 0;
            for (int i = 0; i < dim; i++) sumSquares += x[o + i] * x[o + i];
            float scale = (float) (1.0 / Math.sqrt(sumSquares / dim + eps));
            for (int i = 0; i < dim; i++) out[o + i] = x[o + i] * scale * weight[i];
        }
    }

    static void addInPlace(float[] x, float[] add, int n) {
        for (int i = 0; i < n; i++) x[i] += add[i];
    }

    /** {@code gate[i] = silu(gate[i]) * up[i]} with {@code silu(g) = g / (1 + e^-g)}. */
    static void siluMultiply(float[] gate, float[] up, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[i];
            gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
        }
    }
}
