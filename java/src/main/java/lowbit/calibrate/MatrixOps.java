package lowbit.calibrate;

/**
 * Small matrix ops the learnable parameters are built from: product, transpose, column scaling,
 * element-wise reciprocal, outer-product update. Each with its backward rule.
 */
public final class MatrixOps {
    private MatrixOps() {}

    /** {@code a·b} for {@code a [m][k]}, {@code b [k][n]}. Backward: {@code da = dc·bᵀ}, {@code db = aᵀ·dc}. */
    public static Var matmul(Tape tape, Var a, Var b) {
        int m = a.rows, k = a.cols, n = b.cols;
        if (b.rows != k) throw new IllegalArgumentException("cannot multiply " + m + "×" + k + " by " + b.rows + "×" + n);
        double[] c = new double[m * n];
        tape.gemm(a.value, b.value, c, m, n, k, false);
        Var out = tape.result(c, m, n, a, b);
        tape.onBackward(out, () -> {
            if (a.requiresGrad) tape.gemm(out.grad, Gemm.transpose(b.value, k, n), a.gradArray(), m, k, n, true);
            if (b.requiresGrad) tape.gemm(Gemm.transpose(a.value, m, k), out.grad, b.gradArray(), k, n, m, true);
        });
        return out;
    }

    /** {@code aᵀ}. Backward: the transpose of the incoming gradient. */
    public static Var transpose(Tape tape, Var a) {
        Var out = tape.result(Gemm.transpose(a.value, a.rows, a.cols), a.cols, a.rows, a);
        tape.onBackward(out, () -> {
            double[] g = Gemm.transpose(out.grad, a.cols, a.rows);
            double[] ga = a.gradArray();
            for (int i = 0; i < g.length; i++) ga[i] += g[i];
        });
        return out;
    }

    /**
     * {@code out[r][c] = a[r][c] · s[c]} ({@code divide}: {@code / s[c]}) for a {@code 1 × cols}
     * vector {@code s}: per-channel scaling of activations or of weight input columns.
     */
    public static Var scaleColumns(Tape tape, Var a, Var s, boolean divide) {
        s.requireShape(1, a.cols, "column scale");
        int rows = a.rows, cols = a.cols;
        double[] y = new double[a.value.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) y[r * cols + c] = divide ? a.value[r * cols + c] / s.value[c] : a.value[r * cols + c] * s.value[c];
        }
        Var out = tape.result(y, rows, cols, a, s);
        tape.onBackward(out, () -> {
            double[] g = out.grad;
            if (a.requiresGrad) {
                double[] ga = a.gradArray();
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) ga[r * cols + c] += divide ? g[r * cols + c] / s.value[c] : g[r * cols + c] * s.value[c];
                }
            }
            if (s.requiresGrad) {
                double[] gs = s.gradArray();
                for (int c = 0; c < cols; c++) {
                    double sum = 0;
                    for (int r = 0; r < rows; r++) sum += g[r * cols + c] * a.value[r * cols + c];
                    gs[c] += divide ? -sum / (s.value[c] * s.value[c]) : sum;
                }
            }
        });
        return out;
    }

    /** {@code 1 / a} element-wise. Backward: {@code −g / a²}. */
    public static Var reciprocal(Tape tape, Var a) {
        double[] y = new double[a.value.length];
        for (int i = 0; i < y.length; i++) {
            if (a.value[i] == 0) throw new ArithmeticException("reciprocal of 0 at index " + i);
            y[i] = 1.0 / a.value[i];
        }
        Var out = tape.result(y, a.rows, a.cols, a);
        tape.onBackward(out, () -> {
            double[] ga = a.gradArray();
            for (int i = 0; i < y.length; i++) ga[i] -= out.grad[i] * y[i] * y[i];
        });
        return out;
    }

    /**
     * {@code w + a·bᵀ} for {@code w [out][in]}, {@code a [out][1]}, {@code b [1][in]} (a rank-one
     * update). Backward: {@code dw = g}, {@code da = g·bᵀ}, {@code db = aᵀ·g}.
     */
    public static Var addOuter(Tape tape, Var w, Var a, Var b) {
        int rows = w.rows, cols = w.cols;
        a.requireShape(rows, 1, "left vector");
        b.requireShape(1, cols, "right vector");
        double[] y = w.value.clone();
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) y[r * cols + c] += a.value[r] * b.value[c];
        }
        Var out = tape.result(y, rows, cols, w, a, b);
        tape.onBackward(out, () -> {
            double[] g = out.grad;
            if (w.requiresGrad) {
                double[] gw = w.gradArray();
                for (int i = 0; i < g.length; i++) gw[i] += g[i];
            }
            if (a.requiresGrad) {
                double[] ga = a.gradArray();
                for (int r = 0; r < rows; r++) {
                    double sum = 0;
                    for (int c = 0; c < cols; c++) sum += g[r * cols + c] * b.value[c];
                    ga[r] += sum;
                }
            }
            if (b.requiresGrad) {
                double[] gb = b.gradArray();
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) gb[c] += g[r * cols + c] * a.value[r];
                }
            }
        });
        return out;
    }
}
