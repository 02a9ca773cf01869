package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SmoothingTest {

    private static double[] gaussian(SplittableRandom r, int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = r.nextGaussian() * scale;
        }
        return v;
    }

    /** y = norm(x) * g (+ b): RMSNorm when layerNorm is false, LayerNorm otherwise. */
    private static double[] norm(double[] x, int m, int k, double[] g, double[] b, boolean layerNorm) {
        double[] y = new double[m * k];
        for (int t = 0; t < m; t++) {
            double mean = 0;
            if (layerNorm) {
                for (int j = 0; j < k; j++) {
                    mean += x[t * k + j];
                }
                mean /= k;
            }
            double var = 0;
            for (int j = 0; j < k; j++) {
                double d = x[t * k + j] - mean;
                var += d * d;
            }
            double inv = 1 / Math.sqrt(var / k + 1e-6);
            for (int j = 0; j < k; j++) {
                y[t * k + j] = (x[t * k + j] - mean) * inv * g[j] + (b == null ? 0 : b[j]);
            }
        }
        return y;
    }

    @Test
    void foldingIntoNormComputesTheSameFunctionInFp64() {
        SplittableRandom r = new SplittableRandom(5);
        int m = 9;
        int k = 37;
        int n1 = 11;
        int n2 = 23;
        for (boolean layerNorm : new boolean[] {false, true}) {
            double[] x = gaussian(r, m * k, 3);
            double[] g = gaussian(r, k, 1);
            g[4] = 60; // an outlier channel, as LayerNorm weights produce
            double[] b = layerNorm ? gaussian(r, k, 0.5) : null;
            double[] w1 = gaussian(r, n1 * k, 0.2);
            double[] w2 = gaussian(r, n2 * k, 0.2);
            double[] h = norm(x, m, k, g, b, layerNorm);
            float[] hmax = new float[k];
            for (int i = 0; i < h.length; i++) {
                hmax[i % k] = (float) Math.max(hmax[i % k], Math.abs(h[i]));
            }
            float[] w1f = new float[w1.length];
            float[] w2f = new float[w2.length];
            for (int i = 0; i < w1.length; i++) {
                w1f[i] = (float) w1[i];
            }
            for (int i = 0; i < w2.length; i++) {
                w2f[i] = (float) w2[i];
            }
            double[] s = Smoothing.factors(hmax, List.of(w1f, w2f), 0.5);
            Smoothing.Folded f = Smoothing.foldIntoNorm(g, b, List.of(w1, w2), s);
            double[] hs = norm(x, m, k, f.producerWeight(), f.producerBias(), layerNorm);
            FlattenPlanTest.assertRelativeClose(FlattenPlanTest.matmulT(h, m, w1, n1, k),
                    FlattenPlanTest.matmulT(hs, m, f.consumerWeights().get(0), n1, k), 1e-12);
            FlattenPlanTest.assertRelativeClose(FlattenPlanTest.matmulT(h, m, w2, n2, k),
                    FlattenPlanTest.matmulT(hs, m, f.consumerWeights().get(1), n2, k), 1e-12);
            // smoothing actually moved the outlier: channel 4's activation max shrank
            double maxBefore = 0;
            double maxAfter = 0;
            for (int t = 0; t < m; t++) {
                maxBefore = Math.max(maxBefore, Math.abs(h[t * k + 4]));
                maxAfter = Math.max(maxAfter, Math.abs(hs[t * k + 4]));
            }
            assertEquals(maxBefore / s[4], maxAfter, 1e-9 * maxBefore);
        }
    }

    @Test
    void foldingIntoProducingLinearComputesTheSameFunction() {
        SplittableRandom r = new SplittableRandom(6);
        int m = 5;
        int kin = 19;
        int k = 29;
        int n = 13;
        double[] x = gaussian(r, m * kin, 1);
        double[] p = gaussian(r, k * kin, 1);
        double[] c = gaussian(r, k, 1);
        double[] w = gaussian(r, n * k, 1);
        double[] s = new double[k];
        for (int j = 0; j < k; j++) {
            s[j] = Math.exp(2 * r.nextGaussian());
        }
        double[] h = FlattenPlanTest.matmulT(x, m, p, k, kin);
        for (int i = 0; i < h.length; i++) {
            h[i] += c[i % k];
        }
        Smoothing.Folded f = Smoothing.foldIntoLinear(p, kin, c, List.of(w), s);
        double[] hs = FlattenPlanTest.matmulT(x, m, f.producerWeight(), k, kin);
        for (int i = 0; i < hs.length; i++) {
            hs[i] += f.producerBias()[i % k];
        }
        FlattenPlanTest.assertRelativeClose(FlattenPlanTest.matmulT(h, m, w, n, k),
                FlattenPlanTest.matmulT(hs, m, f.consumerWeights().get(0), n, k), 1e-12);
    }

    @Test
    void factorsFollowTheSmoothQuantFormula() {
        float[] amax = {16f, 0f, 1f};
        float[] w = {0.25f, 3f, -2f, /* row 2 */ -1f, 0.5f, 0.5f};
        double[] s = Smoothing.factors(amax, List.of(w), 0.5);
        assertEquals(Math.sqrt(16) / Math.sqrt(1), s[0], 1e-15);
        assertEquals(1.0, s[1], 0); // no activation information: identity
        assertEquals(1 / Math.sqrt(2), s[2], 1e-15);
        double[] s1 = Smoothing.factors(amax, List.of(w), 1.0);
        assertEquals(16.0, s1[0], 0);
    }
}
