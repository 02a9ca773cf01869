package lowbit.flatquant;

import java.util.Arrays;
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
 * <p>Arithmetic: exactly the fixed-order float32 computation that {@code lowbit.h} specifies for the
 * native fused kernel {@code lowbit_kron_quantize} ({@link lowbit.Context#kronQuantizeInto}), so this
 * Java transform is the reference the native one equals bit for bit: first {@code U = P1ᵀ·X} with
 * {@code U[i][l] = fma(P1[n1−1][i], X[n1−1][l], … fma(P1[0][i], X[0][l], 0))} (k ascending), then
 * {@code Y = U·P2} with {@code Y[i][j] = fma(U[i][n2−1], P2[n2−1][j], … fma(U[i][0], P2[0][j], 0))}
 * (l ascending), each fma rounded once ({@link Math#fma}). An identity factor is skipped: the FMA
 * chain over an identity gives its input back exactly (up to the sign of a zero, which no scale or
 * code can see), so skipping it and running the kernel with the dense identity agree. Tokens run in
 * parallel when there are many. Immutable and thread-safe.
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
        this(n1, n2, toFloat(p1, n1, "P1"), toFloat(p2, n2, "P2"));
    }

    private OnlineTransform(int n1, int n2, float[] p1, float[] p2) {
        if (n1 < 1 || n2 < 1) throw new IllegalArgumentException("Kronecker factor sizes must be >= 1, got " + n1 + " and " + n2);
        this.n1 = n1;
        this.n2 = n2;
        this.p1 = p1;
        this.p2 = p2;
    }

    /** The transform from float32 factors as {@link #p1()} and {@link #p2()} return them (e.g. read back from a file); copied. */
    public static OnlineTransform ofFloats(float[] p1, int n1, float[] p2, int n2) {
        return new OnlineTransform(n1, n2, checked(p1, n1, "P1"), checked(p2, n2, "P2"));
    }

    private static float[] toFloat(double[] p, int n, String what) {
        if (p == null) return null;
        if (p.length != (long) n * n) throw new IllegalArgumentException(what + " must be " + n + " x " + n + ", got " + p.length + " values");
        float[] f = new float[p.length];
        for (int i = 0; i < p.length; i++) {
            if (!Double.isFinite(p[i])) throw new IllegalArgumentException(what + " has a non-finite entry " + p[i] + " at " + i);
            f[i] = (float) p[i];
        }
        return f;
    }

    private static float[] checked(float[] p, int n, String what) {
        if (p == null) return null;
        if (p.length != (long) n * n) throw new IllegalArgumentException(what + " must be " + n + " x " + n + ", got " + p.length + " values");
        for (int i = 0; i < p.length; i++) {
            if (!Float.isFinite(p[i])) throw new IllegalArgumentException(what + " has a non-finite entry " + p[i] + " at " + i);
        }
        return p.clone();
    }

    /** Row length {@code n1·n2}. */
    public int size() {
        return n1 * n2;
    }

    /** {@code {n1, n2}}. */
    public int[] factorSizes() {
        return new int[] {n1, n2};
    }

    /** {@code P1} as float32, row-major (a copy), or null for the identity. */
    public float[] p1() {
        return p1 == null ? null : p1.clone();
    }

    /** {@code P2} as float32, row-major (a copy), or null for the identity. */
    public float[] p2() {
        return p2 == null ? null : p2.clone();
    }

    /** {@code P1} dense: the factor, or the {@code n1 × n1} identity (what the native kernel reads). */
    float[] denseP1() {
        return p1 == null ? identity(n1) : p1.clone();
    }

    /** {@code P2} dense: the factor, or the {@code n2 × n2} identity. */
    float[] denseP2() {
        return p2 == null ? identity(n2) : p2.clone();
    }

    private static float[] identity(int n) {
        float[] e = new float[n * n];
        for (int i = 0; i < n; i++) e[i * n + i] = 1f;
        return e;
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
        int n = n1 * n2;
        float[] u = new float[n];
        if (p1 == null) {
            System.arraycopy(x, off, u, 0, n);
        } else {
            for (int i = 0; i < n1; i++) { // U[i] = fma-chain over k of P1[k][i]·X[k]
                for (int k = 0; k < n1; k++) fmaRow(u, i * n2, p1[k * n1 + i], x, off + k * n2, n2);
            }
        }
        if (p2 == null) {
            System.arraycopy(u, 0, y, off, n);
            return;
        }
        for (int i = 0; i < n1; i++) { // Y[i] = fma-chain over l of U[i][l]·P2[l]
            for (int l = 0; l < n2; l++) fmaRow(y, off + i * n2, u[i * n2 + l], p2, l * n2, n2);
        }
    }

    /** {@code y[to + j] = fma(a, x[from + j], y[to + j])} for {@code j < n}. */
    private static void fmaRow(float[] y, int to, float a, float[] x, int from, int n) {
        for (int j = 0; j < n; j++) y[to + j] = Math.fma(a, x[from + j], y[to + j]);
    }

    @Override
    public String toString() {
        return "OnlineTransform[" + (p1 == null ? "I" : "P1") + " " + n1 + " x " + n1 + " ⊗ " + (p2 == null ? "I" : "P2") + " " + n2 + " x " + n2 + "]";
    }

    /** Equal factor sizes and bit-identical float32 factors. */
    @Override
    public boolean equals(Object o) {
        return o instanceof OnlineTransform t && t.n1 == n1 && t.n2 == n2 && Arrays.equals(t.p1, p1) && Arrays.equals(t.p2, p2);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * n1 + n2) + Arrays.hashCode(p1) * 7 + Arrays.hashCode(p2);
    }
}
