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

    /** Elements per parallel chunk of the element-wise SiLU (smaller arrays run on the calling thread). */
    private static final int SILU_CHUNK = 1 << 15;

    /** {@code gate[i] = silu(gate[i]) * up[i]} with {@code silu(g) = g / (1 + e^-g)}, in parallel chunks when large. */
    static void siluMultiply(float[] gate, float[] up, int n) {
        if (n <= SILU_CHUNK) {
            siluMultiply(gate, up, 0, n);
            return;
        }
        int chunks = (n + SILU_CHUNK - 1) / SILU_CHUNK;
        java.util.stream.IntStream.range(0, chunks).parallel()
                .forEach(c -> siluMultiply(gate, up, c * SILU_CHUNK, Math.min(n, (c + 1) * SILU_CHUNK)));
    }

    private static void siluMultiply(float[] gate, float[] up, int from, int to) {
        for (int i = from; i < to; i++) {
            float g = gate[i];
            gate[i] = g / (1f + FastExp.exp(-g)) * up[i];
        }
    }

    /** {@code out[r] = (x[r] - mean) / sqrt(var + eps) * weight + bias} (biased variance) for each of {@code rows} rows. */
    static void layerNorm(float[] x, float[] weight, float[] bias, float eps, int rows, int dim, float[] out) {
        for (int r = 0; r < rows; r++) {
            int o = r * dim;
            double sum = 0;
            for (int i = 0; i < dim; i++) sum += x[o + i];
            float mean = (float) (sum / dim);
            double squares = 0;
            for (int i = 0; i < dim; i++) {
                float c = x[o + i] - mean;
                squares += c * c;
            }
            float scale = (float) (1.0 / Math.sqrt(squares / dim + eps));
            for (int i = 0; i < dim; i++) out[o + i] = (x[o + i] - mean) * scale * weight[i] + bias[i];
        }
    }

    static void relu(float[] x, int n) {
        for (int i = 0; i < n; i++) if (x[i] < 0) x[i] = 0f;
    }
}
