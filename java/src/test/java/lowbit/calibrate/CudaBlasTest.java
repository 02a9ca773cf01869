package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import lowbit.Lowbit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The engine's FP32 product on cuBLAS against FP64 (from the float-rounded operands), at engine
 * shapes and odd ones, store and accumulate; skipped, visibly, without a GPU.
 */
@Tag("gpu")
class CudaBlasTest {
    @Test
    void matchesFp64WithinFloatSummationError() {
        Assumptions.assumeTrue(Lowbit.cudaDeviceCount() > 0, "no CUDA device on this host: GPU test skipped");
        Assumptions.assumeTrue(CudaBlas.available(), () -> "cuBLAS unavailable: " + CudaBlas.unavailableReason());
        int[][] shapes = {{4096, 576, 576}, {576, 1536, 4096}, {1, 7, 3}, {333, 129, 65}, {24, 4096 * 24, 24}};
        Random rnd = new Random(11);
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            double[] a = new double[m * k], b = new double[k * n], c = new double[m * n];
            for (int i = 0; i < a.length; i++) a[i] = rnd.nextGaussian();
            for (int i = 0; i < b.length; i++) b[i] = rnd.nextGaussian();
            for (boolean accumulate : new boolean[] {false, true}) {
                double[] old = new double[m * n];
                for (int i = 0; i < old.length; i++) old[i] = accumulate ? rnd.nextGaussian() : Double.NaN;
                System.arraycopy(old, 0, c, 0, c.length);
                CudaBlas.multiply(a, b, c, m, n, k, accumulate);
                for (int r = 0; r < m; r += Math.max(1, m / 97)) {
                    for (int j = 0; j < n; j += Math.max(1, n / 89)) {
                        double exact = 0, mag = 0;
                        for (int p = 0; p < k; p++) {
                            double prod = (double) (float) a[r * k + p] * (float) b[p * n + j];
                            exact += prod;
                            mag += Math.abs(prod);
                        }
                        if (accumulate) exact += old[r * n + j];
                        double bound = (k + 2) * 0x1p-24 * mag + 1e-300;
                        double got = c[r * n + j];
                        assertTrue(Math.abs(got - exact) <= bound,
                                m + "x" + n + "x" + k + (accumulate ? " +=" : "") + ": c[" + r + "][" + j + "] = " + got + ", FP64 " + exact);
                    }
                }
                for (double v : c) assertTrue(Double.isFinite(v), "an element of C was not written");
            }
        }
    }
}
