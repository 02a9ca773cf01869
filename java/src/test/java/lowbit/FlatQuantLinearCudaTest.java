package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import lowbit.flatquant.ClippedWeights;
import lowbit.flatquant.FlatQuantLinear;
import lowbit.flatquant.OnlineTransform;
import lowbit.flatquant.TokenQuantizer;
import org.junit.jupiter.api.Test;

/**
 * FlatQuant layers on a CUDA context: the fused kron_quantize kernel gives the Java reference's
 * activation codes and scales bit for bit (SmolLM2's 24 x 24, 32 x 48 and Po ⊗ I = 9 x 64, odd
 * sizes, 4 and 8 bits, many tokens), the integer accumulators exactly, and outputs equal to the
 * simulation within float rounding of the epilogue.
 */
class FlatQuantLinearCudaTest extends GpuTestBase {
    @Test
    void fusedLayerOnCudaEqualsTheJavaReference() {
        Random rnd = new Random(31);
        int[][] factors = {{24, 24}, {32, 48}, {9, 64}, {5, 7}, {13, 1}};
        for (int[] f : factors) {
            int n1 = f[0], n2 = f[1], k = n1 * n2, n = 40;
            for (int bits : new int[] {4, 8}) {
                for (int tokens : new int[] {1, 7, 300}) {
                    double[] p1 = matrix(rnd, n1), p2 = f[0] == 9 ? null : matrix(rnd, n2);
                    double[] w = new double[n * k];
                    for (int i = 0; i < w.length; i++) w[i] = rnd.nextGaussian() * 0.3;
                    String what = n1 + "x" + n2 + " A" + bits + " tokens " + tokens;
                    try (FlatQuantLinear layer = FlatQuantLinear.of(gpu, ClippedWeights.quantize(w, n, k, 4, null), null,
                            new TokenQuantizer(bits, 0.9, 0.85), new OnlineTransform(p1, n1, p2, n2))) {
                        assertTrue(layer.usesFusedTransform(), what);
                        float[] x = new float[tokens * k];
                        for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * (rnd.nextInt(100) == 0 ? 20 : 1));
                        FlatQuantLinear.ActivationCodes got = layer.nativeCodes(x, tokens), want = layer.simulateCodes(x, tokens);
                        assertArrayEquals(want.scales(), got.scales(), what + ": scales");
                        assertArrayEquals(want.codes(), got.codes(), what + ": codes");
                        int[] acc = layer.accumulators(x, tokens);
                        long[] ref = layer.simulateAccumulators(x, tokens);
                        for (int i = 0; i < acc.length; i++) assertEquals(ref[i], acc[i], what + ": accumulator " + i);
                        float[] y = new float[tokens * n];
                        Arrays.fill(y, Float.NaN);
                        layer.forward(x, tokens, y);
                        float[] sim = layer.simulate(x, tokens);
                        for (int i = 0; i < y.length; i++) {
                            assertEquals(sim[i], y[i], 1e-6f * Math.abs(sim[i]) + 1e-30f, what + ": output " + i);
                        }
                    }
                }
            }
        }
    }

    private static double[] matrix(Random rnd, int m) {
        double[] p = new double[m * m];
        for (int i = 0; i < p.length; i++) p[i] = rnd.nextGaussian() * 0.2 + (i % (m + 1) == 0 ? 1 : 0);
        return p;
    }
}
