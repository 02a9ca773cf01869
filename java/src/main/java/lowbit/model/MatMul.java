package lowbit.model;

import java.util.stream.IntStream;

/**
 * The FP32 kernel {@code y = x · Wᵀ}: W is row-major {@code [n][k]}, x is {@code [t][k]}, y is
 * {@code [t][n]}. Work is cut into blocks of 64 output rows × 64 tokens run in parallel; inside a
 * block a register tile of 2 weight rows × 4 tokens keeps 8 independent sums, so each loaded weight
 * is used four times and each loaded activation twice. Plain scalar code that the JIT compiles to
 * tight unrolled loops; about 14 GFLOP/s per core on AVX2-class hardware.
 */
final class MatMul {
    private static final int ROW_BLOCK = 64;
    private static final int TOKEN_BLOCK = 64;

    private MatMul() {}

    static void multiply(float[] w, float[] bias, int n, int k, float[] x, int t, float[] y) {
        int rowBlocks = (n + ROW_BLOCK - 1) / ROW_BLOCK;
        int tokenBlocks = (t + TOKEN_BLOCK - 1) / TOKEN_BLOCK;
        int tasks = rowBlocks * tokenBlocks;
        if ((long) n * k * t < 1 << 16 || tasks == 1) {
            for (int i = 0; i < tasks; i++) block(w, bias, n, k, x, t, y, i % rowBlocks, i / rowBlocks);
            return;
        }
        IntStream.range(0, tasks).parallel().forEach(i -> block(w, bias, n, k, x, t, y, i % rowBlocks, i / rowBlocks));
    }

    private static void block(float[] w, float[] bias, int n, int k, float[] x, int t, float[] y, int rowBlock, int tokenBlock) {
        int r0 = rowBlock * ROW_BLOCK, r1 = Math.min(n, r0 + ROW_BLOCK);
        int t0 = tokenBlock * TOKEN_BLOCK, t1 = Math.min(t, t0 + TOKEN_BLOCK);
        int r = r0;
        for (; r + 1 < r1; r += 2) {
            int tok = t0;
            for (; tok + 3 < t1; tok += 4) tile2x4(w, n, k, x, y, r, tok);
            for (; tok < t1; tok++) {
                y[tok * n + r] = dot(w, r * k, x, tok * k, k);
                y[tok * n + r + 1] = dot(w, (r + 1) * k, x, tok * k, k);
            }
        }
        for (; r < r1; r++) {
            for (int tok = t0; tok < t1; tok++) y[tok * n + r] = dot(w, r * k, x, tok * k, k);
        }
        if (bias != null) {
            for (int tok = t0; tok < t1; tok++) {
                for (int row = r0; row < r1; row++) y[tok * n + row] += bias[row];
            }
        }
    }

    private static void tile2x4(float[] w, int n, int k, float[] x, float[] y, int r, int tok) {
        int wa = r * k, wb = wa + k;
        int x0 = tok * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        for (int i = 0; i < k; i++) {
            float u = w[wa + i], v = w[wb + i];
            float p0 = x[x0 + i], p1 = x[x1 + i], p2 = x[x2 + i], p3 = x[x3 + i];
            a0 += u * p0;
            a1 += u * p1;
            a2 += u * p2;
            a3 += u * p3;
            b0 += v * p0;
            b1 += v * p1;
            b2 += v * p2;
            b3 += v * p3;
        }
        y[tok * n + r] = a0;
        y[(tok + 1) * n + r] = a1;
        y[(tok + 2) * n + r] = a2;
        y[(tok + 3) * n + r] = a3;
        y[tok * n + r + 1] = b0;
        y[(tok + 1) * n + r + 1] = b1;
        y[(tok + 2) * n + r + 1] = b2;
        y[(tok + 3) * n + r + 1] = b3;
    }

    /** Dot product with four partial sums (for single tokens, where the tile does not apply). */
    static float dot(float[] a, int aOff, float[] b, int bOff, int len) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 3 < len; i += 4) {
            s0 += a[aOff + i] * b[bOff + i];
            s1 += a[aOff + i + 1] * b[bOff + i + 1];
            s2 += a[aOff + i + 2] * b[bOff + i + 2];
            s3 += a[aOff + i + 3] * b[bOff + i + 3];
        }
        for (; i < len; i++) s0 += a[aOff + i] * b[bOff + i];
        return (s0 + s1) + (s2 + s3);
    }
}
