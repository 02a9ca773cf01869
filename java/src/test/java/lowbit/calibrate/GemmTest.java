package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The blocked GEMM against a naive triple loop: FP64 to 1e-12 relative, FP32 to 1e-5 relative (Frobenius). */
class GemmTest {
    @Test
    void matchesNaiveProductOnOddShapes() {
        Random rnd = new Random(1);
        int[][] shapes = {{1, 1, 1}, {3, 5, 7}, {65, 257, 3}, {130, 300, 77}, {67, 513, 129}};
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            double[] a = gaussian(rnd, m * k), b = gaussian(rnd, k * n), c0 = gaussian(rnd, m * n);
            double[] ref = c0.clone();
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double sum = 0;
                    for (int p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
                    ref[i * n + j] += sum;
                }
            }
            for (boolean fp64 : new boolean[] {true, false}) {
                double[] c = c0.clone();
                Gemm.multiply(fp64, a, b, c, m, n, k, true);
                assertTrue(relErr(c, ref) < (fp64 ? 1e-12 : 1e-5), m + "×" + n + "×" + k + (fp64 ? " fp64 " : " fp32 ") + relErr(c, ref));
                double[] serial = c0.clone();
                Gemm.multiplySerial(fp64, a, b, serial, m, n, k, true);
                assertArrayEquals(c, serial, 0.0, "serial and parallel results must be identical");
            }
        }
    }

    @Test
    void transposeAndBadInput() {
        double[] a = {1, 2, 3, 4, 5, 6};
        assertArrayEquals(new double[] {1, 4, 2, 5, 3, 6}, Gemm.transpose(a, 2, 3), 0.0);
        assertThrows(IllegalArgumentException.class, () -> Gemm.multiply(true, a, a, new double[3], 2, 2, 3, false));
    }

    private static double[] gaussian(Random rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian();
        return v;
    }

    private static double relErr(double[] got, double[] ref) {
        double e = 0, n = 0;
        for (int i = 0; i < ref.length; i++) {
            e += (got[i] - ref[i]) * (got[i] - ref[i]);
            n += ref[i] * ref[i];
        }
        return Math.sqrt(e / n);
    }
}
