package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.flatquant.OnlineTransform;
import lowbit.flatquant.TokenQuantizer;
import org.junit.jupiter.api.Test;

/**
 * {@link TransformedAbqLinear} on the CPU backend: the native bit-plane GEMM's integer part equals
 * the exact Java product and the output equals the Java simulation bit for bit (odd shapes, odd
 * widths, symmetric and asymmetric, every output written); the symmetric activation codes are
 * FlatQuant's {@link TokenQuantizer} codes (an independent implementation of the clipped per-token
 * quantizer); the asymmetric ones span the clipped range; with an orthogonal transform folded into
 * the weights the layer approximates the FP64 product {@code x·Wᵀ}; bad input throws.
 */
class TransformedAbqLinearTest {
    /** A random orthogonal n × n matrix (Gram-Schmidt of a Gaussian one, FP64), row-major. */
    static double[] orthogonal(Random rnd, int n) {
        double[] q = new double[n * n];
        for (int i = 0; i < n; i++) {
            double[] v = new double[n];
            for (int j = 0; j < n; j++) v[j] = rnd.nextGaussian();
            for (int p = 0; p < i; p++) {
                double dot = 0;
                for (int j = 0; j < n; j++) dot += v[j] * q[p * n + j];
                for (int j = 0; j < n; j++) v[j] -= dot * q[p * n + j];
            }
            double norm = 0;
            for (double e : v) norm += e * e;
            norm = Math.sqrt(norm);
            for (int j = 0; j < n; j++) q[i * n + j] = v[j] / norm;
        }
        return q;
    }

    static double[] gaussian(Random rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian();
        return v;
    }

    /** Activations with an outlier channel and some all-positive tokens (every third token shifted). */
    static float[] activations(Random rnd, int tokens, int k) {
        float[] x = new float[tokens * k];
        for (int i = 0; i < x.length; i++) {
            int t = i / k, c = i % k;
            x[i] = (float) (rnd.nextGaussian() * (c == 3 ? 25 : 1) + (t % 3 == 2 && c != 3 ? 6 : 0));
        }
        return x;
    }

    private static TransformedAbqLinear layer(Context ctx, Random rnd, OnlineTransform transform, int n, int k, int wBits, int aBits,
                                              boolean asym, double clipHi, double clipLo) {
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.05);
        float[] bias = QuantizerTest.gaussian(rnd, n, 1);
        AbqLinear inner = AbqLinear.create(ctx, w, bias, n, k, new WeightQuantizer(wBits, asym, false, 0), new ActivationQuantizer(aBits, asym));
        return TransformedAbqLinear.of(transform, clipHi, clipLo, inner);
    }

    @Test
    void nativeMatchesSimulationBitForBit() {
        Random rnd = new Random(5);
        // {tokens, n, n1, n2}: k = n1·n2 (35, 72, 576) and one layer without a transform (k = 67)
        int[][] shapes = {{1, 7, 5, 7}, {6, 33, 8, 9}, {17, 19, 24, 24}, {3, 11, 67, 0}};
        int[][] widths = {{6, 6}, {4, 4}, {8, 8}, {6, 8}, {5, 3}};
        try (Context ctx = Context.open(Backend.CPU)) {
            for (int[] s : shapes) {
                int tokens = s[0], n = s[1], k = s[3] == 0 ? s[2] : s[2] * s[3];
                OnlineTransform tr = s[3] == 0 ? null : new OnlineTransform(gaussian(rnd, s[2] * s[2]), s[2], gaussian(rnd, s[3] * s[3]), s[3]);
                for (int[] b : widths) {
                    for (boolean asym : new boolean[] {true, false}) {
                        String what = "W" + b[0] + "A" + b[1] + (asym ? " asym " : " sym ") + tokens + "x" + n + "x" + k;
                        try (TransformedAbqLinear l = layer(ctx, rnd, tr, n, k, b[0], b[1], asym, 0.9, 0.8)) {
                            float[] x = activations(rnd, tokens, k);
                            long[] want = l.simulateAccumulators(x, tokens);
                            int[] got = l.accumulators(x, tokens);
                            for (int i = 0; i < want.length; i++) {
                                if (Math.abs(want[i]) >= 1L << 31 || got[i] != want[i]) fail(what + ": acc[" + i + "] = " + got[i] + ", Java " + want[i]);
                            }
                            float[] y = new float[tokens * n];
                            java.util.Arrays.fill(y, Float.NaN);
                            l.forward(x, tokens, y);
                            float[] sim = l.simulate(x, tokens);
                            for (int i = 0; i < y.length; i++) {
                                if (!Float.isFinite(y[i]) || Float.floatToIntBits(y[i]) != Float.floatToIntBits(sim[i])) {
                                    fail(what + ": y[" + i + "] = " + y[i] + ", simulation " + sim[i]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void symmetricCodesAreFlatQuantsTokenQuantizerCodes() {
        Random rnd = new Random(8);
        int tokens = 13, n = 5, n1 = 6, n2 = 10, k = n1 * n2;
        OnlineTransform tr = new OnlineTransform(gaussian(rnd, n1 * n1), n1, gaussian(rnd, n2 * n2), n2);
        try (Context ctx = Context.open(Backend.CPU)) {
            for (int bits : new int[] {4, 8}) {
                for (double[] clip : new double[][] {{1, 1}, {0.9, 0.75}, {0.6, 0.95}}) {
                    try (TransformedAbqLinear l = layer(ctx, rnd, tr, n, k, 8, bits, false, clip[0], clip[1])) {
                        float[] x = activations(rnd, tokens, k);
                        IntCodes got = l.activationCodes(x, tokens);
                        TokenQuantizer fq = new TokenQuantizer(bits, clip[0], clip[1]);
                        float[] xt = tr.apply(x, tokens);
                        float[] scales = fq.scales(xt, tokens, k);
                        int[] codes = fq.codes(xt, tokens, k, scales);
                        for (int t = 0; t < tokens; t++) {
                            assertEquals(Float.floatToIntBits(scales[t]), Float.floatToIntBits(got.scale(t, 0)),
                                    "A" + bits + " clip " + clip[0] + "/" + clip[1] + ": scale of token " + t);
                            for (int c = 0; c < k; c++) {
                                assertEquals(codes[t * k + c], got.code(t, c), "A" + bits + " clip " + clip[0] + "/" + clip[1] + ": code " + t + "," + c);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void asymmetricCodesSpanTheClippedRange() {
        Random rnd = new Random(12);
        int tokens = 9, n = 3, k = 40;
        double clipHi = 0.7, clipLo = 0.85;
        try (Context ctx = Context.open(Backend.CPU); TransformedAbqLinear l = layer(ctx, rnd, null, n, k, 6, 6, true, clipHi, clipLo)) {
            float[] x = activations(rnd, tokens, k);
            IntCodes q = l.activationCodes(x, tokens);
            for (int t = 0; t < tokens; t++) {
                double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < k; c++) {
                    min = Math.min(min, x[t * k + c]);
                    max = Math.max(max, x[t * k + c]);
                }
                double lo = Math.min(0, clipLo * min), hi = Math.max(0, clipHi * max);
                double scale = (hi - lo) / 63;
                assertEquals(scale, q.scale(t, 0), 1e-6 * scale, "token " + t + ": the scale of the clipped range");
                for (int c = 0; c < k; c++) {
                    double v = q.scale(t, 0) * q.value(t, c), clamped = Math.min(Math.max(x[t * k + c], clipLo * min), clipHi * max);
                    assertTrue(Math.abs(v - clamped) <= 0.5 * scale * (1 + 1e-5) + 1e-6 * Math.abs(clamped),
                            "token " + t + ", channel " + c + ": " + v + " is not the clamped " + clamped + " to half a step");
                }
            }
        }
    }

    @Test
    void orthogonalTransformFoldedIntoTheWeightsApproximatesTheFpProduct() {
        Random rnd = new Random(21);
        int tokens = 13, n = 31, n1 = 8, n2 = 9, k = n1 * n2;
        OnlineTransform tr = new OnlineTransform(orthogonal(rnd, n1), n1, orthogonal(rnd, n2), n2);
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.05);
        float[] folded = tr.apply(w, n); // W·P = W·P⁻ᵀ for an orthogonal P
        float[] x = activations(rnd, tokens, k);
        double[] ref = new double[tokens * n];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int c = 0; c < k; c++) s += (double) x[t * k + c] * w[j * k + c];
                ref[t * n + j] = s;
            }
        }
        double[] errors = new double[2];
        int i = 0;
        try (Context ctx = Context.open(Backend.CPU)) {
            for (int bits : new int[] {8, 6}) {
                for (boolean asym : new boolean[] {false, true}) {
                    AbqLinear inner = AbqLinear.create(ctx, folded, null, n, k, new WeightQuantizer(bits, asym, false, 0), new ActivationQuantizer(bits, asym));
                    try (TransformedAbqLinear l = TransformedAbqLinear.of(tr, 1, 1, inner)) {
                        float[] y = new float[tokens * n];
                        l.forward(x, tokens, y);
                        double err = 0, norm = 0;
                        for (int e = 0; e < y.length; e++) {
                            err += (y[e] - ref[e]) * (y[e] - ref[e]);
                            norm += ref[e] * ref[e];
                        }
                        double rel = Math.sqrt(err / norm);
                        // a b-bit grid's rounding error is about 2^-b of the range on each operand
                        assertTrue(rel < (bits == 8 ? 0.02 : 0.08), "W" + bits + "A" + bits + (asym ? " asym" : " sym") + ": relative error " + rel);
                        if (!asym) errors[i++] = rel;
                    }
                }
            }
        }
        assertTrue(errors[1] > errors[0], "6 bits (" + errors[1] + ") should lose more than 8 (" + errors[0] + ")");
    }

    @Test
    void badInputThrows() {
        Random rnd = new Random(2);
        try (Context ctx = Context.open(Backend.CPU)) {
            OnlineTransform tr = new OnlineTransform(gaussian(rnd, 16), 4, gaussian(rnd, 25), 5);
            AbqLinear inner = AbqLinear.create(ctx, QuantizerTest.gaussian(rnd, 3 * 20, 1), null, 3, 20, WeightQuantizer.perChannel(6),
                    ActivationQuantizer.asymmetric(6));
            try (TransformedAbqLinear l = TransformedAbqLinear.of(tr, 1, 1, inner)) {
                assertThrows(IllegalArgumentException.class, () -> TransformedAbqLinear.of(tr, 0, 1, inner), "clip factor 0");
                assertThrows(IllegalArgumentException.class, () -> TransformedAbqLinear.of(tr, 1, 1.5, inner), "clip factor above 1");
                assertThrows(IllegalArgumentException.class, () -> TransformedAbqLinear.of(tr, Double.NaN, 1, inner), "NaN clip factor");
                OnlineTransform wrong = new OnlineTransform(gaussian(rnd, 9), 3, gaussian(rnd, 25), 5);
                IllegalArgumentException size = assertThrows(IllegalArgumentException.class, () -> TransformedAbqLinear.of(wrong, 1, 1, inner));
                assertTrue(size.getMessage().contains("15") && size.getMessage().contains("20"), size.getMessage());
                assertThrows(NullPointerException.class, () -> TransformedAbqLinear.of(tr, 1, 1, null), "no layer");
                assertThrows(IllegalArgumentException.class, () -> l.forward(new float[39], 2, new float[6]), "x too short");
                assertThrows(IllegalArgumentException.class, () -> l.forward(new float[20], 0, new float[6]), "no tokens");
                assertThrows(IllegalArgumentException.class, () -> l.forward(new float[40], 2, new float[5]), "y too short");
                float[] nan = new float[40];
                nan[27] = Float.NaN;
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> l.forward(nan, 2, new float[6]));
                assertTrue(e.getMessage().contains("not finite") && e.getMessage().contains("token 1"), e.getMessage());
            }
        }
    }
}
