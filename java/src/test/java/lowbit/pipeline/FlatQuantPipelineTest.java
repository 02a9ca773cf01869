package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import lowbit.Backend;
import lowbit.Context;
import lowbit.eval.Perplexity;
import lowbit.flatquant.FlatQuantLinear;
import lowbit.flatquant.QuantScheme;
import lowbit.io.RealModelFixture;
import lowbit.model.DecoderModel;
import lowbit.model.LinearOp;
import lowbit.quant.CalibrationStats;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The FlatQuant and W4A4 baseline method names, budgets and refusals; and, on the real model
 * (skipped when unavailable), the whole FlatQuant pipeline with calibration reduced to its start
 * (2 sequences of 32 tokens, 0 epochs: the SmoothQuant-style scales and random orthogonal
 * transforms, the learned parts at their initial values): W8A8 stays within 5% of the FP
 * perplexity, every block linear is a FlatQuantLinear, the KV4 model hands out caches with the
 * codec, and FlatQuant W4A4-KV4 beats W4A4 RTN.
 */
class FlatQuantPipelineTest {
    @Test
    void namesMapToSchemes() {
        assertEquals(QuantMethod.FLATQUANT_W4A4_KV4, QuantMethod.parse("FlatQuant-W4A4-KV4"));
        int n = 0;
        for (QuantMethod m : QuantMethod.values()) {
            if (!m.isFlatQuant()) {
                assertThrows(IllegalStateException.class, () -> m.flatQuantScheme(64), m.id());
                continue;
            }
            n++;
            QuantScheme s = m.flatQuantScheme(64);
            String widths = m.id().substring("flatquant-".length());
            assertEquals(Integer.parseInt(widths.substring(1, 2)), s.weights().bits(), m.id());
            assertEquals(Integer.parseInt(widths.substring(3, 4)), s.activations().bits(), m.id());
            assertEquals(m.id().contains("-kv4"), s.kv() != null, m.id());
            if (s.kv() != null) {
                assertEquals(4, s.kv().bits());
                assertEquals(64, s.kv().groupSize());
            }
        }
        assertEquals(7, n);
        assertEquals(QuantMethod.FLATQUANT_W4A4_KV4.flatQuantScheme(64), QuantMethod.FLATQUANT_W4A4_KV4_GPTQ.flatQuantScheme(64));
        assertEquals(QuantMethod.W4A4_RTN, QuantMethod.parse("w4a4-rtn"));
        assertEquals(QuantMethod.SMOOTHQUANT_W4A4, QuantMethod.parse("smoothquant-w4a4"));
    }

    @Test
    void budgetsAndRefusals() {
        assertEquals(new CalibrationBudget(128, 2048, 15, 4), FlatQuantQuantizer.parseBudget("authors"));
        assertEquals(CalibrationBudget.reduced(), FlatQuantQuantizer.parseBudget(" Reduced "));
        assertEquals(new CalibrationBudget(4, 64, 1, 2), FlatQuantQuantizer.parseBudget("4,64,1,2"));
        for (String bad : new String[] {"fast", "4,64,1", "4,64,x,2", "4,64,1,8", "0,64,1,1", "4,1,1,1"}) {
            assertThrows(IllegalArgumentException.class, () -> FlatQuantQuantizer.parseBudget(bad), bad);
        }
        assertThrows(IllegalArgumentException.class, () -> FlatQuantQuantizer.parseBudget(null));
        assertThrows(IllegalArgumentException.class, () -> new FlatQuantQuantizer(null, CalibrationBudget.reduced(), null, null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new ModelQuantizer(ModelQuantizer.defaultConfig(), null, null).quantize(null, null, QuantMethod.FLATQUANT_W4A4));
        assertTrue(e.getMessage().contains("FlatQuantQuantizer"), e.getMessage());
        try (Context ctx = Context.open(Backend.CPU)) {
            FlatQuantQuantizer q = new FlatQuantQuantizer(ctx, CalibrationBudget.reduced(), null, null);
            e = assertThrows(IllegalArgumentException.class, () -> q.quantize(null, null, QuantMethod.W4A4_RTN));
            assertTrue(e.getMessage().contains("not a FlatQuant method"), e.getMessage());
        }
    }

    @Test
    void wholeModelRunsAndOrdersAsExpected(@TempDir Path dir) throws IOException {
        RealModelFixture.gguf(); // skips when the model is unavailable
        Workspace ws = Workspace.open(null);
        int window = 64;
        int[] eval = ws.evaluationTokens(1, window);
        double fp = Perplexity.evaluate(ws.loadModel(), eval, window, null).perplexity();
        CalibrationBudget start = new CalibrationBudget(2, 32, 0, 1);
        double w8a8, kv4, rtn;
        try (Context ctx = Context.open(Backend.CPU)) {
            FlatQuantQuantizer fq = new FlatQuantQuantizer(ctx, start, dir, null);
            try (QuantizedModel q = fq.quantize(ws, ws.loadModel(), QuantMethod.FLATQUANT_W8A8)) {
                for (String name : q.model().linearNames()) {
                    LinearOp op = q.model().linear(name);
                    if (name.startsWith("blk.")) assertTrue(op instanceof FlatQuantLinear, name + " is " + op);
                }
                assertNull(q.model().newKvCache(4).codec(), "KV16 keeps the plain cache");
                w8a8 = Perplexity.evaluate(q.model(), eval, window, null).perplexity();
            }
            try (QuantizedModel q = fq.quantize(ws, ws.loadModel(), QuantMethod.FLATQUANT_W4A4_KV4)) {
                assertNotNull(q.model().newKvCache(4).codec(), "KV4 caches carry the codec");
                kv4 = Perplexity.evaluate(q.model(), eval, window, null).perplexity();
            }
            DecoderModel m = ws.loadModel();
            ModelCalibration cal = ModelCalibration.run(m, ws.calibrationTokens(64), 32, CalibrationStats.Options.defaults().withSampleTokens(8), null);
            try (QuantizedModel q = new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, null).quantize(ws.loadModel(), cal, QuantMethod.W4A4_RTN)) {
                rtn = Perplexity.evaluate(q.model(), eval, window, null).perplexity();
            }
        }
        System.out.printf("perplexity over %d tokens: FP %.3f, FlatQuant W8A8 (uncalibrated start) %.3f, W4A4-KV4 %.3f, W4A4 RTN %.3f%n", window, fp, w8a8,
                kv4, rtn);
        assertTrue(Math.abs(w8a8 / fp - 1) < 0.05, "FlatQuant W8A8 " + w8a8 + " vs FP " + fp);
        assertTrue(kv4 < rtn, "FlatQuant W4A4-KV4 " + kv4 + " vs W4A4 RTN " + rtn);
    }
}
