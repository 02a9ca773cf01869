package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.CpuIsa;
import lowbit.Lowbit;
import org.junit.jupiter.api.Test;

/**
 * {@link AbqLinear} on the CPU backend: the native integer part equals the Java integer product
 * exactly and {@link AbqLinear#forward} equals {@link AbqLinear#simulate} bit for bit, for the
 * ABQ-LLM widths (W2*A8 with bit balance), asymmetric and symmetric; the error against FP64 shrinks
 * with the bits.
 */
class AbqLinearTest {
    static float[] activations(Random rnd, int t, int k) {
        float[] x = new float[t * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (rnd.nextGaussian() * (i % k == 5 ? 20 : 1));
        }
        return x;
    }

    static void check(Context ctx, long seed, int tokens, int n, int k, WeightQuantizer wq, ActivationQuantizer aq) {
        Random rnd = new Random(seed);
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.05);
        float[] bias = QuantizerTest.gaussian(rnd, n, 1);
        float[] x = activations(rnd, tokens, k);
        String what = wq + " x " + aq + " " + tokens + "x" + n + "x" + k;
        try (AbqLinear layer = AbqLinear.create(ctx, w, bias, n, k, wq, aq)) {
            long[] want = layer.simulateAccumulators(x, tokens);
            int[] got = layer.accumulators(x, tokens);
            for (int i = 0; i < want.length; i++) {
                if (Math.abs(want[i]) >= 1L << 31 || got[i] != want[i]) {
                    fail(what + ": acc[" + i + "] = " + got[i] + ", Java " + want[i]);
                }
            }
            float[] y = new float[tokens * n];
            layer.forward(x, tokens, y);
            float[] sim = layer.simulate(x, tokens);
            for (int i = 0; i < y.length; i++) {
                if (Float.floatToIntBits(y[i]) != Float.floatToIntBits(sim[i])) {
                    fail(what + ": y[" + i + "] = " + y[i] + ", simulation " + sim[i]);
                }
            }
        }
    }

    @Test
    void nativeMatchesSimulationForTheAbqWidths() {
        try (Context ctx = Context.open(Backend.CPU)) {
            long seed = 1;
            int[][] shapes = {{1, 7, 67}, {4, 33, 576}, {9, 17, 300}};
            for (int[] s : shapes) {
                for (boolean asym : new boolean[] {true, false}) {
                    int[][] wa = {{1, 8}, {2, 8}, {3, 8}, {4, 4}, {4, 8}, {6, 6}, {8, 8}, {5, 3}, {7, 2}};
                    for (int[] b : wa) {
                        if (!asym && (b[0] < 2 || b[1] < 2)) {
                            continue;  // symmetric needs a sign and a magnitude bit
                        }
                        check(ctx, seed++, s[0], s[1], s[2], new WeightQuantizer(b[0], asym, false, 0),
                                new ActivationQuantizer(b[1], asym));
                    }
                    // W2*A8 and W1*A8: bit balance, symmetric and ABQ-LLM's asymmetric form.
                    check(ctx, seed++, s[0], s[1], s[2], new WeightQuantizer(2, asym, true, 0), new ActivationQuantizer(8, asym));
                    check(ctx, seed++, s[0], s[1], s[2], new WeightQuantizer(1, asym, true, 0), new ActivationQuantizer(8, asym));
                }
            }
        }
    }

    @Test
    void everyIsaLevelGivesTheSameOutput() {
        Random rnd = new Random(9);
        float[] w = QuantizerTest.gaussian(rnd, 40 * 333, 0.05);
        float[] x = activations(rnd, 6, 333);
        float[] first = null;
        for (CpuIsa isa : CpuIsa.values()) {
            if (isa.ordinal() > Lowbit.cpuIsaBest().ordinal()) {
                continue;
            }
            try (Context ctx = Context.open(Backend.CPU)) {
                ctx.setCpuIsa(isa);
                try (AbqLinear layer = AbqLinear.create(ctx, w, null, 40, 333, WeightQuantizer.bitBalanced(2),
                        ActivationQuantizer.asymmetric(8))) {
                    float[] y = new float[6 * 40];
                    layer.forward(x, 6, y);
                    if (first == null) {
                        first = y;
                        assertArrayEquals(layer.simulate(x, 6), y);
                    } else {
                        assertArrayEquals(first, y, "ISA " + isa);
                    }
                }
            }
        }
    }

    @Test
    void errorShrinksWithBits() {
        Random rnd = new Random(3);
        int t = 8, n = 64, k = 512;
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.05);
        float[] x = activations(rnd, t, k);
        double[] exact = new double[t * n];
        for (int i = 0; i < t; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int c = 0; c < k; c++) {
                    s += (double) x[i * k + c] * w[j * k + c];
                }
                exact[i * n + j] = s;
            }
        }
        try (Context ctx = Context.open(Backend.CPU)) {
            double w8a8 = rel(ctx, w, x, exact, t, n, k, WeightQuantizer.perChannel(8), ActivationQuantizer.asymmetric(8));
            double w6a6 = rel(ctx, w, x, exact, t, n, k, WeightQuantizer.perChannel(6), ActivationQuantizer.asymmetric(6));
            double w4a4 = rel(ctx, w, x, exact, t, n, k, WeightQuantizer.perChannel(4), ActivationQuantizer.asymmetric(4));
            double w2a8 = rel(ctx, w, x, exact, t, n, k, WeightQuantizer.perChannel(2), ActivationQuantizer.asymmetric(8));
            double w2sa8 = rel(ctx, w, x, exact, t, n, k, WeightQuantizer.bitBalanced(2), ActivationQuantizer.asymmetric(8));
            String all = "W8A8 " + w8a8 + ", W6A6 " + w6a6 + ", W4A4 " + w4a4 + ", W2A8 " + w2a8 + ", W2*A8 " + w2sa8;
            assertTrue(w8a8 < 0.02 && w8a8 < w6a6 && w6a6 < w4a4, all);
            assertTrue(w2sa8 < w2a8, "bit balance must beat plain 2-bit: " + all);
            assertTrue(w4a4 < 0.45 && w2a8 < 0.8, all);
        }
    }

    static double rel(Context ctx, float[] w, float[] x, double[] exact, int t, int n, int k, WeightQuantizer wq,
                      ActivationQuantizer aq) {
        try (AbqLinear layer = AbqLinear.create(ctx, w, null, n, k, wq, aq)) {
            float[] y = new float[t * n];
            layer.forward(x, t, y);
            double num = 0, den = 0;
            for (int i = 0; i < y.length; i++) {
                num += (y[i] - exact[i]) * (y[i] - exact[i]);
                den += exact[i] * exact[i];
            }
            return Math.sqrt(num / den);
        }
    }

    @Test
    void badArguments() {
        try (Context ctx = Context.open(Backend.CPU)) {
            float[] w = new float[4 * 128];
            IntCodes grouped = new WeightQuantizer(4, true, false, 64).quantize(w, 4, 128);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> AbqLinear.of(ctx, grouped, null, ActivationQuantizer.asymmetric(8)));
            assertTrue(e.getMessage().contains("per-group"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> AbqLinear.create(ctx, w, new float[3], 4, 128,
                    WeightQuantizer.perChannel(4), ActivationQuantizer.asymmetric(8)));
            try (AbqLinear layer = AbqLinear.create(ctx, w, null, 4, 128, WeightQuantizer.perChannel(4),
                    ActivationQuantizer.asymmetric(8))) {
                assertThrows(IllegalArgumentException.class, () -> layer.forward(new float[100], 1, new float[4]));
                assertThrows(IllegalArgumentException.class, () -> layer.forward(new float[128], 1, new float[3]));
                float[] nan = new float[128];
                nan[3] = Float.NaN;
                assertThrows(lowbit.NonFiniteInputException.class, () -> layer.forward(nan, 1, new float[4]));
            }
        }
    }
}
