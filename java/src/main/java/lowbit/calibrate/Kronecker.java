package lowbit.calibrate;

/**
 * Multiplication of each row by a Kronecker product: for a row x of length {@code n1·n2} read as
 * the row-major {@code n1 × n2} matrix X, {@code x·(A ⊗ B) = vec(Aᵀ·X·B)} — two small products per
 * row instead of one {@code n × n} product. Both products run as single large GEMMs over all rows
 * (the rows' matrices laid side by side). Backward, with G the incoming gradient of a row:
 * {@code dX = A·G·Bᵀ}, {@code dA = Σ_rows (X·B)·Gᵀ}, {@code dB = Σ_rows (Aᵀ·X)ᵀ·G}.
 */
public final class Kronecker {
    private Kronecker() {}

    /** {@code x·(a ⊗ b)} row by row, {@code a [n1][n1]}, {@code b [n2][n2]}, {@code x [rows][n1·n2]}. */
    public static Var apply(Tape tape, Var x, Var a, Var b) {
        int n1 = a.rows, n2 = b.rows, rows = x.rows;
        a.requireShape(n1, n1, "left Kronecker factor");
        b.requireShape(n2, n2, "right Kronecker factor");
        if (x.cols != n1 * n2) throw new IllegalArgumentException("rows of " + x.cols + " values do not match factors " + n1 + "×" + n2);
        double[] xb = new double[x.value.length];
        tape.gemm(x.value, b.value, xb, rows * n1, n2, n2, false);      // X·B for every row
        double[] xbPanel = toPanel(xb, rows, n1, n2);
        double[] yPanel = new double[xb.length];
        tape.gemm(Gemm.transpose(a.value, n1, n1), xbPanel, yPanel, n1, rows * n2, n1, false); // Aᵀ·(X·B)
        Var out = tape.result(fromPanel(yPanel, rows, n1, n2), rows, n1 * n2, x, a, b);
        tape.onBackward(out, () -> {
            double[] g = out.grad;
            double[] gPanel = toPanel(g, rows, n1, n2);
            if (x.requiresGrad) {
                double[] gbt = new double[g.length];
                tape.gemm(g, Gemm.transpose(b.value, n2, n2), gbt, rows * n1, n2, n2, false); // G·Bᵀ
                double[] dxPanel = new double[g.length];
                tape.gemm(a.value, toPanel(gbt, rows, n1, n2), dxPanel, n1, rows * n2, n1, false); // A·G·Bᵀ
                double[] dx = fromPanel(dxPanel, rows, n1, n2);
                double[] gx = x.gradArray();
                for (int i = 0; i < dx.length; i++) gx[i] += dx[i];
            }
            if (a.requiresGrad) {
                tape.gemm(xbPanel, Gemm.transpose(gPanel, n1, rows * n2), a.gradArray(), n1, n1, rows * n2, true);
            }
            if (b.requiresGrad) {
                double[] atxPanel = new double[g.length];
                tape.gemm(Gemm.transpose(a.value, n1, n1), toPanel(x.value, rows, n1, n2), atxPanel, n1, rows * n2, n1, false);
                double[] atx = fromPanel(atxPanel, rows, n1, n2);
                tape.gemm(Gemm.transpose(atx, rows * n1, n2), g, b.gradArray(), n2, n2, rows * n1, true);
            }
        });
        return out;
    }

    /** {@code [rows][n1][n2]} → {@code [n1][rows][n2]}: the rows' matrices side by side. */
    private static double[] toPanel(double[] x, int rows, int n1, int n2) {
        double[] p = new double[x.length];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < n1; i++) System.arraycopy(x, (r * n1 + i) * n2, p, (i * rows + r) * n2, n2);
        }
        return p;
    }

    private static double[] fromPanel(double[] p, int rows, int n1, int n2) {
        double[] x = new double[p.length];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < n1; i++) System.arraycopy(p, (i * rows + r) * n2, x, (r * n1 + i) * n2, n2);
        }
        return x;
    }
}
