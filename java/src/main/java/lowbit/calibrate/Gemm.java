package lowbit.calibrate;

import java.util.stream.IntStream;

/**
 * The matrix product of the engine, {@code C (+)= A·B} with row-major {@code A [m][k]}, {@code B
 * [k][n]}, {@code C [m][n]}, stored as {@code double}. In FP32 mode the operands are rounded to
 * {@code float} and the product is computed and accumulated in {@code float} (the fast mode of
 * calibration); in FP64 mode everything stays {@code double} (gradient checks).
 *
 * <p>Kernel: C is cut into tiles of 64 rows × 256 columns, run in parallel on the common pool;
 * inside a tile two rows of A are swept against four rows of B at a time, the 256-wide column
 * strip of the two accumulators staying in L1. The innermost loop is a plain axpy over columns
 * that C2 compiles to SIMD code (about 28 GFLOP/s FP32 on 2 AVX-512 cores at 1024×1536×576).
 * Every element of C is computed by one task in a fixed order, so results are deterministic.
 */
final class Gemm {
    private static final int ROW_TILE = 64;
    private static final int COL_TILE = 256;
    /** Products smaller than this run on the calling thread. */
    private static final long PARALLEL_WORK = 1L << 18;

    private Gemm() {}

    /** {@code C = A·B} ({@code accumulate}: {@code C += A·B}), on the common pool when large enough. */
    static void multiply(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate) {
        run(fp64, a, b, c, m, n, k, accumulate, (long) m * n * k >= PARALLEL_WORK);
    }

    /** Like {@link #multiply} but always on the calling thread (for callers that are already parallel). */
    static void multiplySerial(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate) {
        run(fp64, a, b, c, m, n, k, accumulate, false);
    }

    /** The transpose of row-major {@code a [rows][cols]}, i.e. {@code [cols][rows]}. */
    static double[] transpose(double[] a, int rows, int cols) {
        double[] t = new double[rows * cols];
        for (int r0 = 0; r0 < rows; r0 += 32) {
            int r1 = Math.min(rows, r0 + 32);
            for (int c0 = 0; c0 < cols; c0 += 32) {
                int c1 = Math.min(cols, c0 + 32);
                for (int r = r0; r < r1; r++) {
                    for (int c = c0; c < c1; c++) t[c * rows + r] = a[r * cols + c];
                }
            }
        }
        return t;
    }

    private static void run(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate, boolean parallel) {
        if (a.length < (long) m * k || b.length < (long) k * n || c.length < (long) m * n) {
            throw new IllegalArgumentException("gemm operands too short for " + m + "×" + k + " · " + k + "×" + n);
        }
        if (m == 0 || n == 0) return;
        int rowTiles = (m + ROW_TILE - 1) / ROW_TILE;
        int colTiles = (n + COL_TILE - 1) / COL_TILE;
        if (fp64) {
            IntStream tasks = IntStream.range(0, rowTiles * colTiles);
            (parallel ? tasks.parallel() : tasks).forEach(t -> tile64(a, b, c, m, n, k, accumulate, t / colTiles, t % colTiles));
        } else {
            float[] af = toFloat(a, m * k);
            float[] bf = toFloat(b, k * n);
            IntStream tasks = IntStream.range(0, rowTiles * colTiles);
            (parallel ? tasks.parallel() : tasks).forEach(t -> tile32(af, bf, c, m, n, k, accumulate, t / colTiles, t % colTiles));
        }
    }

    private static float[] toFloat(double[] a, int length) {
        float[] f = new float[length];
        for (int i = 0; i < length; i++) f[i] = (float) a[i];
        return f;
    }

    private static void tile32(float[] a, float[] b, double[] c, int m, int n, int k, boolean accumulate, int rowTile, int colTile) {
        int i0 = rowTile * ROW_TILE, i1 = Math.min(m, i0 + ROW_TILE);
        int j0 = colTile * COL_TILE, nb = Math.min(n, j0 + COL_TILE) - j0;
        float[] acc0 = new float[nb], acc1 = new float[nb];
        for (int i = i0; i < i1; i += 2) {
            boolean two = i + 1 < i1;
            int r0 = i * k, r1 = (two ? i + 1 : i) * k;
            java.util.Arrays.fill(acc0, 0f);
            java.util.Arrays.fill(acc1, 0f);
            int p = 0;
            for (; p + 3 < k; p += 4) {
                float a0 = a[r0 + p], a1 = a[r0 + p + 1], a2 = a[r0 + p + 2], a3 = a[r0 + p + 3];
                float b0 = a[r1 + p], b1 = a[r1 + p + 1], b2 = a[r1 + p + 2], b3 = a[r1 + p + 3];
                int o0 = p * n + j0, o1 = o0 + n, o2 = o1 + n, o3 = o2 + n;
                for (int j = 0; j < nb; j++) {
                    float x0 = b[o0 + j], x1 = b[o1 + j], x2 = b[o2 + j], x3 = b[o3 + j];
                    acc0[j] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3;
                    acc1[j] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3;
                }
            }
            for (; p < k; p++) {
                float a0 = a[r0 + p], b0 = a[r1 + p];
                int o = p * n + j0;
                for (int j = 0; j < nb; j++) {
                    float x = b[o + j];
                    acc0[j] += a0 * x;
                    acc1[j] += b0 * x;
                }
            }
            store(acc0, c, i * n + j0, nb, accumulate);
            if (two) store(acc1, c, (i + 1) * n + j0, nb, accumulate);
        }
    }

    private static void store(float[] acc, double[] c, int off, int len, boolean accumulate) {
        if (accumulate) {
            for (int j = 0; j < len; j++) c[off + j] += acc[j];
        } else {
            for (int j = 0; j < len; j++) c[off + j] = acc[j];
        }
    }

    private static void tile64(double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate, int rowTile, int colTile) {
        int i0 = rowTile * ROW_TILE, i1 = Math.min(m, i0 + ROW_TILE);
        int j0 = colTile * COL_TILE, nb = Math.min(n, j0 + COL_TILE) - j0;
        double[] acc = new double[nb];
        for (int i = i0; i < i1; i++) {
            java.util.Arrays.fill(acc, 0.0);
            for (int p = 0; p < k; p++) {
                double av = a[i * k + p];
                int o = p * n + j0;
                for (int j = 0; j < nb; j++) acc[j] += av * b[o + j];
            }
            int off = i * n + j0;
            for (int j = 0; j < nb; j++) c[off + j] = accumulate ? c[off + j] + acc[j] : acc[j];
        }
    }
}
