package lowbit.flatquant;

import java.util.stream.IntStream;

/**
 * The online part of a FlatQuant transform at inference: every token row {@code x} (length {@code n
 * = n1·n2}) becomes {@code x·(P1 ⊗ P2)}.
 *
 * <p>Convention (the authors' {@code kronecker_matmul}, and {@link lowbit.calibrate.Kronecker}):
 * read the row as the row-major {@code n1 × n2} matrix {@code X} ({@code X[i][j] = x[i·n2 + j]});
 * then {@code (x·(P1 ⊗ P2))[a·n2 + b] = Σ_{i,j} X[i][j]·P1[i][a]·P2[j][b] = (P1ᵀ·X·P2)[a][b]}. So
 * the transform is two small products per token, {@code O(n·(n1 + n2))} instead of {@code O(n²)}.
 * Either factor may be the identity (null), e.g. the attention output's {@code Po ⊗ I}.
 *
 * <p>Runs in Java in float32 ({@code Z = X·P2}, then {@code Y = P1ᵀ·Z}, each sum accumulated in
 * index order), tokens in parallel when there are many. This is the one method a native fused
 * transform-and-quantize kernel replaces later. Immutable and thread-safe.
 */
public final class OnlineTransform {
    private static final int PARALLEL_TOKENS = 16;
    private final int n1;
    private final int n2;
    /** {@code P1} row-major, or null for the identity. */
    private final float[] p1;
    /** {@code P2} row-major, or null for the identity. */
    private final float[] p2;

    /**
     * {@code p1} ({@code n1 × n1}) and {@code p2} ({@code n2 × n2}) row-major in FP64 (rounded once to
     * float32 here), either null for the identity of that size.
     */
    public OnlineTransform(double[] p1, int n1, double[] p2, int n2) {
        if (n1 < 1 || n2 < 1) throw new IllegalArgumentException("Kronecker factor sizes must be >= 1, got " + n1 + " and " + n2);
        this.n1 = n1;
        this.n2 = n2;
        this.p1 = toFloat(p1, n1, "P1");
        this.p2 = toFloat(p2, n2, "P2");
    }

    private static float[] toFloat(double[] p, int n, String what) {
        if (p == null) return null;
        if (p.length != n * n) throw new IllegalArgumentException(what + " must be " + n + " x " + n + ", got " + p.length + " values");
        float[] f = new float[p.length];
        for (int i = 0; i < p.length; i++) {
            if (!Double.isFinite(p[i])) throw new IllegalArgumentException(what + " has a non-finite entry " + p[i] + " at " + i);
            f[i] = (float) p[i];
        }
        return f;
    }

    /** Row length {@code n1·n2}. */
    public int size() {
        return n1 * n2;
    }

    /** {@code {n1, n2}}. */
    public int[] factorSizes() {
        return new int[] {n1, n2};
    }

    /** {@code x·(P1 ⊗ P2)} for {@code tokens} rows of {@code x} (a new array of {@code tokens·n} values). */
    public float[] apply(float[] x, int tokens) {
        int n = size();
        if (tokens < 0 || x.length < (long) tokens * n) {
            throw new IllegalArgumentException("transform of " + tokens + " tokens of " + n + " values needs " + ((long) tokens * n) + " inputs, got " + x.length);
        }
        float[] y = new float[tokens * n];
        IntStream range = IntStream.range(0, tokens);
        (tokens >= PARALLEL_TOKENS ? range.parallel() : range).forEach(t -> row(x, y, t * n));
        return y;
    }

    private void row(float[] x, float[] y, int off) {
        float[] z = new float[n1 * n2];
        if (p2 == null) {
            System.arraycopy(x, off, z, 0, n1 * n2);
        } else {
            float[] xr = new float[n2];
            float[] zr = new float[n2];
            for (int i = 0; i < n1; i++) { // Z[i] = Σ_j X[i][j]·P2[j]
                System.arraycopy(x, off + i * n2, xr, 0, n2);
                java.util.Arrays.fill(zr, 0f);
                for (int j = 0; j < n2; j++) axpy(zr, xr[j], p2, j * n2, n2);
                System.arraycopy(zr, 0, z, i * n2, n2);
            }
        }
        if (p1 == null) {
            System.arraycopy(z, 0, y, off, n1 * n2);
            return;
        }
        float[] yr = new float[n2];
        for (int a = 0; a < n1; a++) { // Y[a] = Σ_i P1[i][a]·Z[i]
            java.util.Arrays.fill(yr, 0f);
            for (int i = 0; i < n1; i++) axpy(yr, p1[i * n1 + a], z, i * n2, n2);
            System.arraycopy(yr, 0, y, off + a * n2, n2);
        }
    }

    /** {@code y[i] += a·x[from + i]} for {@code i < n}. */
    private static void axpy(float[] y, float a, float[] x, int from, int n) {
        for (int i = 0; i < n; i++) y[i] += a * x[from + i];
    }
}
