package lowbit.calibrate;

/**
 * The Cayley map, an orthogonal parametrization: for any square R, {@code A = R − Rᵀ} is
 * skew-symmetric and {@code Q = (I − A)⁻¹·(I + A)} is orthogonal ({@code I − A} is always
 * invertible). The inverse of the small {@code n × n} matrix {@code I − A} is formed by Gauss-Jordan
 * elimination with partial pivoting (n is a Kronecker factor size, ≤ a few hundred). Backward, with
 * {@code M = I − A}: {@code dA = M⁻ᵀ·G·(Q + I)ᵀ}, {@code dR = dA − dAᵀ}.
 */
public final class Cayley {
    private Cayley() {}

    public static Var apply(Tape tape, Var raw) {
        int n = raw.rows;
        raw.requireShape(n, n, "Cayley parameter");
        double[] m = new double[n * n], plus = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double a = raw.value[i * n + j] - raw.value[j * n + i];
                m[i * n + j] = (i == j ? 1 : 0) - a;
                plus[i * n + j] = (i == j ? 1 : 0) + a;
            }
        }
        double[] minv = invert(m, n);
        double[] q = new double[n * n];
        Gemm.multiply(true, minv, plus, q, n, n, n, false);
        Var out = tape.result(q, n, n, raw);
        tape.onBackward(out, () -> {
            double[] qi = q.clone();
            for (int i = 0; i < n; i++) qi[i * n + i] += 1;
            double[] t = new double[n * n], da = new double[n * n];
            Gemm.multiply(true, Gemm.transpose(minv, n, n), out.grad, t, n, n, n, false);
            Gemm.multiply(true, t, Gemm.transpose(qi, n, n), da, n, n, n, false);
            double[] gr = raw.gradArray();
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) gr[i * n + j] += da[i * n + j] - da[j * n + i];
            }
        });
        return out;
    }

    /** The inverse of {@code a [n][n]} by Gauss-Jordan elimination with partial pivoting. */
    static double[] invert(double[] a, int n) {
        double[] w = a.clone();
        double[] inv = new double[n * n];
        for (int i = 0; i < n; i++) inv[i * n + i] = 1;
        for (int col = 0; col < n; col++) {
            int pivot = col;
            for (int r = col + 1; r < n; r++) if (Math.abs(w[r * n + col]) > Math.abs(w[pivot * n + col])) pivot = r;
            if (Math.abs(w[pivot * n + col]) < 1e-300) throw new ArithmeticException("singular matrix in the Cayley map");
            swapRows(w, n, col, pivot);
            swapRows(inv, n, col, pivot);
            double d = 1.0 / w[col * n + col];
            for (int j = 0; j < n; j++) {
                w[col * n + j] *= d;
                inv[col * n + j] *= d;
            }
            for (int r = 0; r < n; r++) {
                if (r == col) continue;
                double f = w[r * n + col];
                if (f == 0) continue;
                for (int j = 0; j < n; j++) {
                    w[r * n + j] -= f * w[col * n + j];
                    inv[r * n + j] -= f * inv[col * n + j];
                }
            }
        }
        return inv;
    }

    private static void swapRows(double[] a, int n, int r1, int r2) {
        if (r1 == r2) return;
        for (int j = 0; j < n; j++) {
            double t = a[r1 * n + j];
            a[r1 * n + j] = a[r2 * n + j];
            a[r2 * n + j] = t;
        }
    }
}
