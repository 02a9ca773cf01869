package lowbit.calibrate;

import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * The pure-Java kernel behind {@link Gemm}: the fallback when OpenBLAS cannot load, the path for
 * products too small to pay for a native call, and the reference the native path is tested against.
 * Same contract as {@link Gemm#multiply}; the caller has checked the operands.
 *
 * <p>C is cut into tiles of 64 rows × 256 columns, run in parallel on the common pool; inside a tile
 * two rows of A are swept against four rows of B at a time, the 256-wide column strip of the two
 * accumulators staying in L1. The innermost loop is a plain axpy over columns that C2 compiles to
 * SIMD code (about 25 GFLOP/s FP32 on 2 cores at the engine's shapes). Every element of C is
 * computed by one task in a fixed order, so results are deterministic and do not depend on the
 * number of threads.
 */
final class JavaGemm {
    private static final int ROW_TILE = 64;
    private static final int COL_TILE = 256;

    private JavaGemm() {}

    static void multiply(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate, boolean parallel) {
        if (m == 0 || n == 0) return;
        int rowTiles = (m + ROW_TILE - 1) / ROW_TILE;
        int colTiles = (n + COL_TILE - 1) / COL_TILE;
        IntStream tasks = IntStream.range(0, rowTiles * colTiles);
        if (parallel) tasks = tasks.parallel();
        if (fp64) {
            tasks.forEach(t -> tile64(a, b, c, m, n, k, accumulate, t / colTiles, t % colTiles));
        } else {
            float[] af = toFloat(a, m * k);
            float[] bf = toFloat(b, k * n);
            tasks.forEach(t -> tile32(af, bf, c, m, n, k, accumulate, t / colTiles, t % colTiles));
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
            Arrays.fill(acc0, 0f);
            Arrays.fill(acc1, 0f);
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
            Arrays.fill(acc, 0.0);
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
