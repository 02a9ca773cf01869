package lowbit.calibrate;

import java.util.stream.IntStream;

/**
 * LayerNorm over each row (OPT family): {@code y = x̂ ⊙ γ + β}, {@code x̂ = (x − μ)·r}, {@code r =
 * 1/√(var + eps)} (biased variance). Backward, with {@code g = dy ⊙ γ}: {@code dx = r·(g −
 * mean(g) − x̂·mean(g ⊙ x̂))}, {@code dγ = Σ dy ⊙ x̂}, {@code dβ = Σ dy}.
 */
public final class LayerNorm {
    private LayerNorm() {}

    public static Var apply(Tape tape, Var x, Var gamma, Var beta, double eps) {
        int rows = x.rows, dim = x.cols;
        gamma.requireShape(1, dim, "LayerNorm weight");
        beta.requireShape(1, dim, "LayerNorm bias");
        double[] xh = new double[x.value.length];
        double[] inv = new double[rows];
        double[] y = new double[x.value.length];
        IntStream.range(0, rows).parallel().forEach(r -> {
            int o = r * dim;
            double mean = 0;
            for (int i = 0; i < dim; i++) mean += x.value[o + i];
            mean /= dim;
            double var = 0;
            for (int i = 0; i < dim; i++) var += (x.value[o + i] - mean) * (x.value[o + i] - mean);
            double ri = 1.0 / Math.sqrt(var / dim + eps);
            inv[r] = ri;
            for (int i = 0; i < dim; i++) {
                xh[o + i] = (x.value[o + i] - mean) * ri;
                y[o + i] = xh[o + i] * gamma.value[i] + beta.value[i];
            }
        });
        Var out = tape.result(y, rows, dim, x, gamma, beta);
        tape.onBackward(out, () -> {
            double[] dy = out.grad;
            if (x.requiresGrad) {
                double[] dx = x.gradArray();
                IntStream.range(0, rows).parallel().forEach(r -> {
                    int o = r * dim;
                    double sumG = 0, sumGx = 0;
                    for (int i = 0; i < dim; i++) {
                        double g = dy[o + i] * gamma.value[i];
                        sumG += g;
                        sumGx += g * xh[o + i];
                    }
                    double meanG = sumG / dim, meanGx = sumGx / dim;
                    for (int i = 0; i < dim; i++) dx[o + i] += inv[r] * (dy[o + i] * gamma.value[i] - meanG - xh[o + i] * meanGx);
                });
            }
            if (gamma.requiresGrad || beta.requiresGrad) {
                double[] dg = gamma.requiresGrad ? gamma.gradArray() : null;
                double[] db = beta.requiresGrad ? beta.gradArray() : null;
                for (int r = 0; r < rows; r++) {
                    for (int i = 0; i < dim; i++) {
                        if (dg != null) dg[i] += dy[r * dim + i] * xh[r * dim + i];
                        if (db != null) db[i] += dy[r * dim + i];
                    }
                }
            }
        });
        return out;
    }
}
