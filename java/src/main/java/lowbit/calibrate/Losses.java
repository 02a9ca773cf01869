package lowbit.calibrate;

/**
 * The block losses of the methods, each a 1×1 result: mean squared error (FlatQuant, OmniQuant),
 * and ABQ-LLM's distribution-correction terms, the symmetric KL divergence between attention maps
 * and the negative log of the mean cosine similarity of output rows.
 */
public final class Losses {
    private Losses() {}

    /** {@code mean((a − b)²)} over all elements. Backward: {@code ±2(a − b)/N}. */
    public static Var mse(Tape tape, Var a, Var b) {
        b.requireShape(a.rows, a.cols, "MSE target");
        int n = a.value.length;
        double sum = 0;
        for (int i = 0; i < n; i++) sum += (a.value[i] - b.value[i]) * (a.value[i] - b.value[i]);
        Var out = tape.result(new double[] {sum / n}, 1, 1, a, b);
        tape.onBackward(out, () -> {
            double g = out.grad[0] * 2.0 / n;
            if (a.requiresGrad) {
                double[] ga = a.gradArray();
                for (int i = 0; i < n; i++) ga[i] += g * (a.value[i] - b.value[i]);
            }
            if (b.requiresGrad) {
                double[] gb = b.gradArray();
                for (int i = 0; i < n; i++) gb[i] -= g * (a.value[i] - b.value[i]);
            }
        });
        return out;
    }

    /**
     * {@code KL(p‖q) + KL(q‖p)} per row of two stacks of distributions (attention maps, zeros
     * allowed), averaged over rows: {@code Σ_j (p − q)·(log(p + ε) − log(q + ε))}, ε = 1e-10.
     * Backward: {@code d/dp = log((p+ε)/(q+ε)) + (p − q)/(p + ε)}, symmetric for q.
     */
    public static Var symmetricKl(Tape tape, Var p, Var q) {
        q.requireShape(p.rows, p.cols, "second distribution");
        final double eps = 1e-10;
        int n = p.value.length;
        double sum = 0;
        for (int i = 0; i < n; i++) sum += (p.value[i] - q.value[i]) * (Math.log(p.value[i] + eps) - Math.log(q.value[i] + eps));
        int rows = p.rows;
        Var out = tape.result(new double[] {sum / rows}, 1, 1, p, q);
        tape.onBackward(out, () -> {
            double g = out.grad[0] / rows;
            for (int i = 0; i < n; i++) {
                double pv = p.value[i] + eps, qv = q.value[i] + eps, diff = p.value[i] - q.value[i];
                double log = Math.log(pv) - Math.log(qv);
                if (p.requiresGrad) p.gradArray()[i] += g * (log + diff / pv);
                if (q.requiresGrad) q.gradArray()[i] += g * (-log - diff / qv);
            }
        });
        return out;
    }

    /**
     * {@code −log(mean_rows cos(a_r, b_r))}, the mean cosine floored at 1e-12. Backward: {@code
     * −1/(c·rows) · (b_r/(|a_r||b_r|) − cos_r·a_r/|a_r|²)} for a, symmetric for b.
     */
    public static Var negLogCosine(Tape tape, Var a, Var b) {
        b.requireShape(a.rows, a.cols, "second operand");
        int rows = a.rows, cols = a.cols;
        double[] na = new double[rows], nb = new double[rows], cos = new double[rows];
        double mean = 0;
        for (int r = 0; r < rows; r++) {
            double dot = 0, aa = 0, bb = 0;
            for (int c = 0; c < cols; c++) {
                double x = a.value[r * cols + c], y = b.value[r * cols + c];
                dot += x * y;
                aa += x * x;
                bb += y * y;
            }
            na[r] = Math.sqrt(aa);
            nb[r] = Math.sqrt(bb);
            if (na[r] == 0 || nb[r] == 0) throw new IllegalArgumentException("cosine of a zero row " + r);
            cos[r] = dot / (na[r] * nb[r]);
            mean += cos[r];
        }
        mean /= rows;
        boolean floored = mean < 1e-12;
        double c = Math.max(mean, 1e-12);
        Var out = tape.result(new double[] {-Math.log(c)}, 1, 1, a, b);
        tape.onBackward(out, () -> {
            if (floored) return;
            double g = -out.grad[0] / (c * rows);
            for (int r = 0; r < rows; r++) {
                for (int col = 0; col < cols; col++) {
                    int i = r * cols + col;
                    double x = a.value[i], y = b.value[i];
                    if (a.requiresGrad) a.gradArray()[i] += g * (y / (na[r] * nb[r]) - cos[r] * x / (na[r] * na[r]));
                    if (b.requiresGrad) b.gradArray()[i] += g * (x / (na[r] * nb[r]) - cos[r] * y / (nb[r] * nb[r]));
                }
            }
        });
        return out;
    }
}
