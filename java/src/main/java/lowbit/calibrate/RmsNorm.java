package lowbit.calibrate;

import java.util.stream.IntStream;

/**
 * RMSNorm over each row: {@code y = x · r · w} with {@code r = 1/√(mean(x²) + eps)}. Backward,
 * with {@code x̂ = x·r} and {@code g = dy ⊙ w}: {@code dx = r·(g − x̂·mean(g ⊙ x̂))}, {@code dw =
 * Σ_rows dy ⊙ x̂}.
 */
public final class RmsNorm {
    private RmsNorm() {}

    public static Var apply(Tape tape, Var x, Var weight, double eps) {
        int rows = x.rows, dim = x.cols;
        weight.requireShape(1, dim, "RMSNorm weight");
        double[] inv = new double[rows];
        double[] y = new double[x.value.length];
        IntStream.range(0, rows).parallel().forEach(r -> {
            int o = r * dim;
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += x.value[o + i] * x.value[o + i];
            double ri = 1.0 / Math.sqrt(ss / dim + eps);
            inv[r] = ri;
            for (int i = 0; i < dim; i++) y[o + i] = x.value[o + i] * ri * weight.value[i];
        });
        Var out = tape.result(y, rows, dim, x, weight);
        tape.onBackward(out, () -> {
            double[] dy = out.grad;
            if (x.requiresGrad) {
                double[] dx = x.gradArray();
                IntStream.range(0, rows).parallel().forEach(r -> {
                    int o = r * dim;
                    double dot = 0;
                    for (int i = 0; i < dim; i++) dot += dy[o + i] * weight.value[i] * x.value[o + i] * inv[r];
                    double mean = dot / dim;
                    for (int i = 0; i < dim; i++) {
                        double xh = x.value[o + i] * inv[r];
                        dx[o + i] += inv[r] * (dy[o + i] * weight.value[i] - xh * mean);
                    }
                });
            }
            if (weight.requiresGrad) {
                double[] dw = weight.gradArray();
                for (int r = 0; r < rows; r++) {
                    for (int i = 0; i < dim; i++) dw[i] += dy[r * dim + i] * x.value[r * dim + i] * inv[r];
                }
            }
        });
        return out;
    }
}
