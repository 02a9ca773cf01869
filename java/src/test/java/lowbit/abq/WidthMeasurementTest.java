package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import org.junit.jupiter.api.Test;

/**
 * {@link WidthMeasurement} and {@link BitPlaneGemmTimer} on the CPU backend: errors measured for
 * real on synthetic activations send a layer with a massive outlier channel to a wider width than a
 * well-behaved one (times from a fixed table, so the outcome does not depend on the clock); the
 * measured error is the one of {@link AbqLinear#simulate}, the Java integer reference, against
 * FP64; the timer caches per (N, K, width, M) and keeps medians.
 */
class WidthMeasurementTest {
    static final GemmTimer WORK = (n, k, w, m) -> 1e-9 * w.binaryWork() * n * k * m;

    /** {@code tokens × k} N(0, 1) activations; channel {@code outlier} (if >= 0) is ±{@code size} instead. */
    static float[] activations(Random rnd, int tokens, int k, int outlier, float size) {
        float[] x = new float[tokens * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        if (outlier >= 0) {
            for (int t = 0; t < tokens; t++) x[t * k + outlier] = (rnd.nextBoolean() ? size : -size) * (float) (1 + 0.1 * rnd.nextGaussian());
        }
        return x;
    }

    @Test
    void anOutlierChannelNeedsAWiderWidth() {
        int n = 40, k = 96, tokens = 32, outlier = 7;
        Random rnd = new Random(5);
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.05);
        // the outlier channel meets small weights (as in LLMs), so the output is carried by the others
        for (int j = 0; j < n; j++) w[j * k + outlier] /= 100;
        float[] calm = activations(rnd, tokens, k, -1, 0);
        float[] wild = activations(rnd, tokens, k, outlier, 100);
        List<AbqWidth> ws = AbqWidth.parseList(List.of("W8A8,W4A8,W4A4,W2*A8"));
        AbqWidthPolicy policy = new AbqWidthPolicy(ws, 0.06, List.of(1, 16));
        try (Context ctx = Context.open(Backend.CPU)) {
            LayerWidthFigures a = WidthMeasurement.measure(ctx, WORK, "calm", w, n, k, calm, tokens, ws, policy.timingTokens());
            LayerWidthFigures b = WidthMeasurement.measure(ctx, WORK, "outlier", w, n, k, wild, tokens, ws, policy.timingTokens());
            AbqWidthReport r = policy.decide(List.of(a, b));
            System.out.print(r.toTable());
            AbqWidth wa = r.widths().get("calm"), wb = r.widths().get("outlier");
            assertEquals(AbqWidth.parse("W4A4"), wa);
            assertTrue(wa.atMostAsWideAs(wb) && !wa.equals(wb), "calm " + wa + ", outlier " + wb);
            assertFalse(r.decision("outlier").overBudget());
            AbqWidth a4 = AbqWidth.parse("W4A4");
            assertTrue(b.candidate(a4).relativeError() > 10 * a.candidate(a4).relativeError(), r.toTable());
            // errors shrink with the width on both layers
            for (LayerWidthFigures f : List.of(a, b)) {
                assertTrue(f.candidate(AbqWidth.parse("W8A8")).relativeError() < f.candidate(AbqWidth.parse("W4A8")).relativeError());
                assertTrue(f.candidate(AbqWidth.parse("W4A8")).relativeError() < f.candidate(a4).relativeError());
            }
            // the times are the table's, per timing M
            assertEquals(List.of(WORK.seconds(n, k, a4, 1), WORK.seconds(n, k, a4, 16)), a.candidate(a4).seconds());
        }
    }

    @Test
    void theMeasuredErrorIsTheIntegerReferencesAgainstFp64() {
        int n = 23, k = 130, tokens = 5;
        Random rnd = new Random(8);
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.1);
        float[] x = activations(rnd, tokens, k, 3, 30);
        List<AbqWidth> ws = AbqWidth.parseList(List.of("W8A8,W6A6,W3A8,W2*A8,W1A8"));
        try (Context ctx = Context.open(Backend.CPU)) {
            LayerWidthFigures f = WidthMeasurement.measure(ctx, WORK, "l", w, n, k, x, tokens, ws, List.of(1));
            for (AbqWidth width : ws) {
                float[] sim;
                try (AbqLinear q = AbqLinear.create(ctx, w, null, n, k, width.weightQuantizer(), width.activationQuantizer())) {
                    sim = q.simulate(x, tokens);
                }
                double num = 0, den = 0;
                for (int t = 0; t < tokens; t++) {
                    for (int j = 0; j < n; j++) {
                        double ref = 0;
                        for (int c = 0; c < k; c++) ref += (double) x[t * k + c] * w[j * k + c];
                        num += (sim[t * n + j] - ref) * (sim[t * n + j] - ref);
                        den += ref * ref;
                    }
                }
                assertEquals(num / den, f.candidate(width).relativeError(), 1e-12 * num / den, width.toString());
            }
            assertThrows(IllegalArgumentException.class, () -> WidthMeasurement.measure(ctx, WORK, "l", w, n, k, x, 0, ws, List.of(1)));
            assertThrows(IllegalArgumentException.class, () -> WidthMeasurement.measure(ctx, WORK, "l", w, n, k + 1, x, tokens, ws, List.of(1)));
        }
    }

    @Test
    void theTimerMeasuresEachShapeOnceAndKeepsMedians() {
        assertEquals(2.0, BitPlaneGemmTimer.median(new double[] {3, 1, 2}));
        assertEquals(2.5, BitPlaneGemmTimer.median(new double[] {4, 1, 3, 2}));
        assertEquals(7.0, BitPlaneGemmTimer.median(new double[] {7}));
        try (Context ctx = Context.open(Backend.CPU)) {
            assertThrows(IllegalArgumentException.class, () -> new BitPlaneGemmTimer(ctx, 0));
            BitPlaneGemmTimer timer = new BitPlaneGemmTimer(ctx, 3);
            AbqWidth w4a8 = AbqWidth.parse("W4A8"), w2b = AbqWidth.parse("W2*A8");
            double s = timer.seconds(33, 130, w4a8, 1);
            assertTrue(s > 0 && s < 10, "seconds " + s);
            assertEquals(s, timer.seconds(33, 130, w4a8, 1));
            assertEquals(s, timer.seconds(33, 130, List.of(w4a8), List.of(1))[0][0]);
            assertEquals(1, timer.measurements());
            timer.seconds(33, 130, w4a8, 4);
            timer.seconds(33, 130, w2b, 1);
            timer.seconds(34, 130, w2b, 1);
            assertEquals(4, timer.measurements());
            // two layers of one shape: the second is served from the cache
            float[] w = QuantizerTest.gaussian(new Random(1), 33 * 130, 0.1);
            float[] x = activations(new Random(2), 3, 130, -1, 0);
            WidthMeasurement.measure(ctx, timer, "a", w, 33, 130, x, 3, List.of(w4a8, w2b), List.of(1, 4));
            assertEquals(5, timer.measurements()); // only (W2*A8, M = 4) was new
            WidthMeasurement.measure(ctx, timer, "b", w, 33, 130, x, 3, List.of(w4a8, w2b), List.of(1, 4));
            assertEquals(5, timer.measurements());
            assertThrows(IllegalArgumentException.class, () -> timer.seconds(0, 130, w4a8, 1));
        }
    }
}
