package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import lowbit.Backend;
import lowbit.Context;
import lowbit.abq.AbqLinear;
import lowbit.abq.AbqWidth;
import lowbit.abq.AbqWidthPolicy;
import lowbit.abq.AbqWidthReport;
import lowbit.abq.GemmTimer;
import lowbit.abq.IntCodes;
import lowbit.abq.LayerWidthFigures;
import lowbit.io.HfCheckpoint;
import lowbit.io.SafetensorsDType;
import lowbit.model.FloatLinear;
import lowbit.model.OptModel;
import lowbit.model.OptModelTest;
import lowbit.quant.CalibrationStats;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code abq-auto} end to end on a tiny random OPT (12 block linear layers with biases, CPU
 * backend): widths chosen per layer from errors measured for real and times from a fixed table
 * (proportional to the binary work, so nothing depends on the clock) come out mixed under a budget
 * between the layers' W4A4 errors; every installed layer runs its chosen width's round-to-nearest
 * codes and its native output equals the Java integer reference ({@link AbqLinear#simulate}) bit
 * for bit; the model still runs.
 */
class AbqAutoPipelineTest {
    @TempDir
    Path tmp;

    static final GemmTimer WORK = (n, k, w, m) -> 1e-9 * w.binaryWork() * n * k * m;

    private static OptModel load(Path dir) throws IOException {
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            return OptModel.load(hf);
        }
    }

    private static int[] tokens(int n, long seed) {
        Random r = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = r.nextInt(OptModelTest.VOCAB);
        return t;
    }

    @Test
    void mixedWidthsRunTheIntegerReference() throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("opt"), 6, "model.decoder.", true, SafetensorsDType.F32);
        OptModel fp = load(dir);
        ModelCalibration cal = ModelCalibration.run(fp, tokens(96, 9), 24, CalibrationStats.Options.defaults().withSampleTokens(32), null);
        AbqWidthPolicy loose = AbqWidthPolicy.parse(List.of("W8A8,W4A8,W4A4,W2*A8"), Double.POSITIVE_INFINITY, List.of(1, 24));
        AbqWidth w4a4 = AbqWidth.parse("W4A4");
        try (Context ctx = Context.open(Backend.CPU)) {
            AbqQuantizer quantizer = new AbqQuantizer(ctx, CalibrationBudget.reduced(), null, null);
            List<LayerWidthFigures> figures = quantizer.measureWidths(load(dir), cal, loose, WORK);
            assertEquals(OptModelTest.BLOCKS * 6, figures.size());
            // a budget between the layers' W4A4 errors: the better half stays at W4A4 (the fastest), the rest goes wider
            double[] e4 = figures.stream().mapToDouble(f -> f.candidate(w4a4).relativeError()).sorted().toArray();
            double budget = (e4[e4.length / 2 - 1] + e4[e4.length / 2]) / 2;
            AbqWidthPolicy policy = loose.withErrorBudget(budget);
            AbqWidthReport choice = policy.decide(figures);
            System.out.print(choice.toTable());
            Set<AbqWidth> used = new HashSet<>(choice.widths().values());
            assertTrue(used.size() >= 2 && used.contains(w4a4), "widths " + choice.widths());

            OptModel m = load(dir);
            OptModel reference = load(dir);
            try (QuantizedModel q = quantizer.quantizeAuto(m, cal, policy, WORK)) {
                assertEquals(QuantMethod.ABQ_AUTO, q.method());
                assertEquals(choice.widths().keySet(), q.layers().keySet());
                Random rnd = new Random(3);
                for (Map.Entry<String, AbqWidth> e : choice.widths().entrySet()) {
                    String name = e.getKey();
                    AbqWidth width = e.getValue();
                    FloatLinear f = (FloatLinear) reference.linear(name);
                    AbqLinear layer = (AbqLinear) q.layers().get(name);
                    assertSame(layer, m.linear(name));
                    // the chosen width's round-to-nearest codes and activation quantizer
                    IntCodes want = width.weightQuantizer().quantize(f.weight(), f.outFeatures(), f.inFeatures());
                    assertArrayEquals(want.codes(), layer.weights().codes(), name);
                    assertArrayEquals(want.scales(), layer.weights().scales(), name);
                    assertArrayEquals(want.zeroPoints(), layer.weights().zeroPoints(), name);
                    assertEquals(width.weightPlanes(), layer.weights().planes(), name);
                    assertEquals(width.activationBits(), layer.activations().bits(), name);
                    // native output (with the FP bias) equals the Java integer reference bit for bit
                    int t = 7;
                    float[] x = new float[t * f.inFeatures()];
                    for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * (i % f.inFeatures() == 2 ? 8 : 1));
                    float[] y = new float[t * f.outFeatures()];
                    layer.forward(x, t, y);
                    float[] sim = layer.simulate(x, t);
                    for (int i = 0; i < y.length; i++) {
                        if (Float.floatToIntBits(y[i]) != Float.floatToIntBits(sim[i])) fail(name + " " + width + ": y[" + i + "] = " + y[i] + ", Java " + sim[i]);
                    }
                }
                // the report: chosen width, measured error, and the candidates' figures in the details
                for (QuantizationReport.Row r : q.report().rows()) {
                    AbqWidthReport.Decision d = choice.decision(r.layer());
                    assertEquals("ABQ " + d.width(), r.method());
                    assertEquals(d.choice().relativeError(), r.relativeError());
                }
                String table = q.table();
                for (String name : choice.widths().keySet()) assertTrue(table.contains(name), table);
                assertTrue(table.contains("ABQ width policy") && table.contains("candidates"), table);
                // the quantized model runs and stays close to the FP one
                int[] t = tokens(20, 4);
                float[] want = reference.logits(reference.forwardHidden(reference.newKvCache(t.length), t), t.length);
                float[] got = m.logits(m.forwardHidden(m.newKvCache(t.length), t), t.length);
                double diff = 0, max = 0;
                for (int i = 0; i < want.length; i++) {
                    assertTrue(Float.isFinite(got[i]));
                    diff = Math.max(diff, Math.abs(got[i] - want[i]));
                    max = Math.max(max, Math.abs(want[i]));
                }
                assertTrue(diff > 0 && diff < 0.5 * max, "max |quantized - FP| " + diff + " vs max |logit| " + max);
            }
            // a tighter budget never narrows a layer; at budget 0 every layer is over budget and at the widest
            AbqWidthReport zero = loose.withErrorBudget(0).decide(figures);
            for (AbqWidthReport.Decision d : zero.decisions()) {
                assertTrue(d.overBudget() && d.width().equals(AbqWidth.parse("W8A8")), d.layer());
            }
            assertTrue(zero.toTable().contains("kept at the widest, W8A8"));
        }
    }

    @Test
    void abqAutoIsNamedAndRefusedElsewhere() throws IOException {
        assertEquals(QuantMethod.ABQ_AUTO, QuantMethod.parse("abq-auto"));
        assertTrue(QuantMethod.ABQ_AUTO.isAbq());
        assertFalse(QuantMethod.ABQ_AUTO.abqCalibrates());
        IllegalStateException s = assertThrows(IllegalStateException.class, QuantMethod.ABQ_AUTO::abqConfig);
        assertTrue(s.getMessage().contains("per layer"), s.getMessage());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new ModelQuantizer(ModelQuantizer.defaultConfig(), null, null).quantize(null, null, QuantMethod.ABQ_AUTO));
        assertTrue(e.getMessage().contains("quantizeAuto"), e.getMessage());
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("bad"), 1, "model.decoder.", true, SafetensorsDType.F32);
        OptModel fp = load(dir);
        ModelCalibration none = ModelCalibration.run(fp, tokens(24, 2), 24, CalibrationStats.Options.defaults().withSampleTokens(0), null);
        try (Context ctx = Context.open(Backend.CPU)) {
            AbqQuantizer quantizer = new AbqQuantizer(ctx, CalibrationBudget.reduced(), null, null);
            e = assertThrows(IllegalArgumentException.class, () -> quantizer.measureWidths(load(dir), none, AbqWidthPolicy.defaults(), WORK));
            assertTrue(e.getMessage().contains("sample"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> quantizer.measureWidths(load(dir), none, AbqWidthPolicy.defaults(), null));
            assertTrue(e.getMessage().contains("timer"), e.getMessage());
        }
    }
}
