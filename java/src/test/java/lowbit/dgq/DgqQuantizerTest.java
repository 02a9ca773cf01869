package lowbit.dgq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The two-phase search, its grids and the smoothing rule. */
class DgqQuantizerTest {
    @Test
    void gridsAreTheAuthors() {
        double[] p1 = DgqWeightQuantizer.phase1Ratios(20);
        assertEquals(1.009, p1[0], 1e-12);
        assertEquals(0.80, p1[19], 1e-12);
        double[] p2 = DgqWeightQuantizer.phase2Ratios(80);
        assertEquals(1.02 - 0.82 / 80, p2[0], 1e-12);
        assertEquals(0.20, p2[79], 1e-12);
    }

    @Test
    void expandedWeightsStayInRangeAndApproximateW() {
        Random rnd = new Random(1);
        int n = 16, k = 128;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * (i % 37 == 0 ? 0.2 : 0.02));
        w[5] = 0;  // and an all-zero group
        java.util.Arrays.fill(w, 2 * k, 2 * k + 32, 0f);
        float[] x = new float[32 * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        for (WeightFormat f : WeightFormat.values()) {
            DgqQuantizedWeights q = DgqWeightQuantizer.quantize(w, n, k, x, 32, DgqConfig.defaults().withGroup(32).withFormat(f));
            double num = 0, den = 0;
            float[] d = q.dequantize();
            for (int j = 0; j < n; j++) {
                for (int c = 0; c < k; c++) {
                    int v = q.w8(j, c);
                    assertTrue(v >= -127 && v <= 127, f + ": W8 " + v);
                    int g = c / 32;
                    assertTrue(q.groupScale(j, g) >= 1 && q.groupScale(j, g) <= 255);
                    num += Math.pow(d[j * k + c] - w[j * k + c], 2);
                    den += Math.pow(w[j * k + c], 2);
                }
            }
            assertTrue(num / den < 0.06, f + ": relative weight error " + num / den);
            if (f == WeightFormat.SYMMETRIC_INT4) {
                for (int c = 0; c < 32; c++) assertEquals(0, q.w8(2, c), "zero group stays zero");
            }
        }
    }

    @Test
    void outputErrorObjectiveBeatsWeightMseOnItsOwnMetric() {
        Random rnd = new Random(2);
        int n = 24, k = 64, t = 48;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.02);
        float[] x = new float[t * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * (i % k < 4 ? 20 : 1));
        DgqConfig cfg = DgqConfig.defaults().withGroup(32);
        double out = outputError(DgqWeightQuantizer.quantize(w, n, k, x, t, cfg), w, x, t);
        double mse = outputError(DgqWeightQuantizer.quantize(w, n, k, x, 0, cfg), w, x, t);
        assertTrue(out <= mse, "output-error search " + out + " should not lose to weight-MSE search " + mse);
    }

    private static double outputError(DgqQuantizedWeights q, float[] w, float[] x, int t) {
        int n = q.rows(), k = q.cols();
        float[] d = q.dequantize();
        double e = 0;
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int c = 0; c < k; c++) s += x[i * k + c] * ((double) w[j * k + c] - d[j * k + c]);
                e += s * s;
            }
        }
        return e;
    }

    @Test
    void percentileSmoothingUsesTheBaselineRank() {
        float[] a = new float[400];
        for (int j = 0; j < a.length; j++) a[j] = j + 1;  // 1..400
        // rank int(0.005 * 400 + 1.5) = 3 from the top: baseline 398
        float[] s = PercentileSmoothing.factors(a, 0.995);
        assertEquals(400f / 398f, s[399], 0f);
        assertEquals(399f / 398f, s[398], 0f);
        assertEquals(1f, s[397], 0f);
        assertEquals(1f, s[0], 0f);
        assertArrayEquals(new float[] {1f, 1f}, PercentileSmoothing.factors(new float[] {0f, 0f}, 0.995), 0f);
        assertThrows(IllegalArgumentException.class, () -> PercentileSmoothing.factors(new float[] {Float.NaN}, 0.99));
    }

    @Test
    void badShapes() {
        assertThrows(IllegalArgumentException.class,
                () -> DgqWeightQuantizer.quantize(new float[96], 1, 96, null, 0, DgqConfig.defaults().withGroup(64)));
        float[] w = new float[64];
        w[3] = Float.NaN;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DgqWeightQuantizer.quantize(w, 1, 64, null, 0, DgqConfig.defaults().withGroup(32)));
        assertTrue(e.getMessage().contains("row 0, column 3"), e.getMessage());
    }
}
