package lowbit.calibrate;

import java.util.List;
import java.util.Random;

/**
 * One invertible {@code n × n} factor of a Kronecker transform in FlatQuant's SVD-like form {@code P
 * = U·diag(σ)·Vᵀ} with orthogonal {@code U = U₀·cayley(R_u)}, {@code V = V₀·cayley(R_v)} (fixed
 * orthogonal bases U₀, V₀, learnable R_u, R_v starting at 0) and learnable σ starting at 1. Its
 * inverse-transpose is {@code U·diag(1/σ)·Vᵀ}: no matrix inverse is ever formed.
 */
public final class AffineFactor {
    private final int n;
    private final Var baseU;
    private final Var baseV;
    private final Param rawU;
    private final Param rawV;
    private final Param sigma;

    /** {@code random}: U₀ a random orthogonal matrix (QR of a Gaussian matrix, seeded), else I; V₀ = I. */
    public AffineFactor(String name, int n, boolean random, long seed) {
        if (n < 1) throw new IllegalArgumentException("factor size " + n + " must be >= 1");
        this.n = n;
        this.baseU = Var.constant(random ? randomOrthogonal(n, new Random(seed)) : identity(n), n, n);
        this.baseV = Var.constant(identity(n), n, n);
        this.rawU = new Param(name + ".u", new double[n * n], n, n);
        this.rawV = new Param(name + ".v", new double[n * n], n, n);
        double[] ones = new double[n];
        java.util.Arrays.fill(ones, 1.0);
        this.sigma = new Param(name + ".sigma", ones, 1, n);
    }

    public int size() {
        return n;
    }

    public List<Param> params() {
        return List.of(rawU, rawV, sigma);
    }

    /** {@code P} and {@code P⁻ᵀ} on {@code tape} (sharing U and V). */
    public Var[] matrixAndInverseTranspose(Tape tape) {
        Var u = MatrixOps.matmul(tape, baseU, Cayley.apply(tape, rawU.var()));
        Var vt = MatrixOps.transpose(tape, MatrixOps.matmul(tape, baseV, Cayley.apply(tape, rawV.var())));
        Var p = MatrixOps.matmul(tape, MatrixOps.scaleColumns(tape, u, sigma.var(), false), vt);
        Var pit = MatrixOps.matmul(tape, MatrixOps.scaleColumns(tape, u, sigma.var(), true), vt);
        return new Var[] {p, pit};
    }

    static double[] identity(int n) {
        double[] a = new double[n * n];
        for (int i = 0; i < n; i++) a[i * n + i] = 1;
        return a;
    }

    /** Q of the QR decomposition (modified Gram-Schmidt on the columns) of a Gaussian matrix. */
    static double[] randomOrthogonal(int n, Random rnd) {
        double[][] cols = new double[n][n];
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < n; i++) cols[j][i] = rnd.nextGaussian();
            for (int prev = 0; prev < j; prev++) {
                double dot = 0;
                for (int i = 0; i < n; i++) dot += cols[j][i] * cols[prev][i];
                for (int i = 0; i < n; i++) cols[j][i] -= dot * cols[prev][i];
            }
            double norm = 0;
            for (int i = 0; i < n; i++) norm += cols[j][i] * cols[j][i];
            norm = Math.sqrt(norm);
            for (int i = 0; i < n; i++) cols[j][i] /= norm;
        }
        double[] q = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) q[i * n + j] = cols[j][i];
        return q;
    }
}
