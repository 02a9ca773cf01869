package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class FlattenPlanTest {

    static double[] matmulT(double[] x, int m, double[] w, int n, int k) {
        double[] y = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int c = 0; c < k; c++) {
                    acc += x[i * k + c] * w[j * k + c];
                }
                y[i * n + j] = acc;
            }
        }
        return y;
    }

    static void assertRelativeClose(double[] expected, double[] actual, double tol) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            num = Math.max(num, Math.abs(expected[i] - actual[i]));
            den = Math.max(den, Math.abs(expected[i]));
        }
        assertTrue(num <= tol * den, "max abs diff " + num + " exceeds " + tol + " x " + den);
    }

    @Test
    void flattenedProductEqualsOriginalInFp64() {
        SplittableRandom r = new SplittableRandom(11);
        int[][] shapes = {{7, 13, 5}, {33, 61, 17}, {1, 1, 1}, {9, 127, 31}};
        for (int[] s : shapes) {
            int m = s[0];
            int k = s[1];
            int n = s[2];
            double[] x = new double[m * k];
            double[] w = new double[n * k];
            for (int i = 0; i < x.length; i++) {
                x[i] = r.nextGaussian() * (r.nextInt(10) == 0 ? 80 : 1);
            }
            for (int i = 0; i < w.length; i++) {
                w[i] = r.nextGaussian();
            }
            int[] copies = new int[k];
            double[] scale = new double[k];
            for (int j = 0; j < k; j++) {
                copies[j] = 1 + (r.nextInt(4) == 0 ? r.nextInt(7) : 0);
                scale[j] = Math.exp(r.nextGaussian());
            }
            for (FlattenPlan plan : new FlattenPlan[] {FlattenPlan.ofCopies(copies),
                    FlattenPlan.ofCopies(copies).withInputScale(scale), FlattenPlan.ofCopies(copies).paddedTo(8)}) {
                int kp = plan.expandedFeatures();
                double[] y = matmulT(x, m, w, n, k);
                double[] yp = matmulT(plan.flatten(x, m), m, plan.expandWeights(w, n), n, kp);
                assertRelativeClose(y, yp, 1e-12);
            }
        }
    }

    @Test
    void thresholdRuleAndLayout() {
        float[] max = {1f, 10f, 2.5f, 0.5f, 7f};
        FlattenPlan plan = FlattenPlan.forThreshold(max, 2.5);
        // k_j = ceil(m_j / T) above T: 10/2.5 = 4, 7/2.5 -> 3; at or below T stays 1
        assertEquals(1, plan.copies(0));
        assertEquals(4, plan.copies(1));
        assertEquals(1, plan.copies(2));
        assertEquals(1, plan.copies(3));
        assertEquals(3, plan.copies(4));
        assertEquals(10, plan.expandedFeatures());
        assertArrayEquals(new int[] {0, 1, 1, 1, 1, 2, 3, 4, 4, 4}, plan.sourceChannels());
        float[] mult = plan.multipliers();
        assertEquals(0.25f, mult[1]);
        assertEquals(1f, mult[0]);
        assertEquals((float) (1.0 / 3), mult[9]);
        assertEquals(2.5f, plan.flattenedAbsMax(max));
        assertEquals(2.0, plan.expansionRatio(), 0);

        FlattenPlan padded = plan.paddedTo(8);
        assertEquals(16, padded.expandedFeatures());
        assertEquals(0f, padded.multipliers()[15]);
        float[] w = {1, 2, 3, 4, 5};
        float[] wp = padded.expandWeights(w, 1);
        assertArrayEquals(new float[] {1, 2, 2, 2, 2, 3, 4, 5, 5, 5, 0, 0, 0, 0, 0, 0}, wp);
        assertEquals(FlattenPlan.identity(4), FlattenPlan.ofCopies(new int[] {1, 1, 1, 1}));
    }

    @Test
    void runtimeFloatFlattenUsesKernelArrays() {
        FlattenPlan plan = FlattenPlan.ofCopies(new int[] {3, 1, 2}).withInputScale(new double[] {2, 1, 0.5});
        float[] x = {6f, -1f, 3f};
        float[] f = plan.flatten(x, 1);
        int[] src = plan.sourceChannels();
        float[] mult = plan.multipliers();
        for (int j = 0; j < f.length; j++) {
            assertEquals(x[src[j]] * mult[j], f[j]);
        }
        assertEquals(1f, f[0]);
        assertEquals(3f, f[4]);
    }

    @Test
    void jsonRoundTrip() {
        FlattenPlan plan = FlattenPlan.ofCopies(new int[] {1, 5, 2}).withInputScale(new double[] {0.3, 1.7, 1e-3}).paddedTo(4);
        FlattenPlan back = FlattenPlan.fromJson(plan.toJson());
        assertEquals(plan, back);
        assertArrayEquals(plan.multipliers(), back.multipliers());
        assertArrayEquals(plan.sourceChannels(), back.sourceChannels());
    }
}
