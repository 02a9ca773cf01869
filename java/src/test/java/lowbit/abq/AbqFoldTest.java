package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.calibrate.BlockHooks;
import lowbit.calibrate.BlockSetup;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Param;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.calibrate.SiteStatsFixture;
import lowbit.calibrate.SiteStats;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/**
 * The fold of ABQ's smoothing scales and compensation vectors into weights and norms is exact: a
 * small GQA LLaMA block (4 query heads over 2 KV heads, odd FFN width 11) with random
 * LET scales (spread over two decades), random compensation vectors and random clip logits, run
 * through the calibration hooks without quantization, equals the plain block built from the folded
 * weights, in FP64, to 1e-12 relative. The parameters travel through a saved-values map as after a
 * calibration run. Also: the method's parameter set and groups, and the refusals.
 */
class AbqFoldTest {
    private static final int DIM = 12, KV = 6, FFN = 11, SEQ = 5;
    private final Random rnd = new Random(5);

    private LlamaBlock block() {
        LlamaConfig c = new LlamaConfig(8, DIM, FFN, 4, 2, 3, 2, 10000, 1, 1e-5f, 64, 100);
        Map<String, double[]> w = new LinkedHashMap<>();
        int[][] shapes = {{DIM, DIM}, {KV, DIM}, {KV, DIM}, {DIM, DIM}, {FFN, DIM}, {FFN, DIM}, {DIM, FFN}};
        String[] names = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        for (int i = 0; i < names.length; i++) w.put(names[i], gaussian(shapes[i][0] * shapes[i][1], 0.4));
        return new LlamaBlock(c, RotaryEmbedding.of(c, null), positive(DIM), positive(DIM), w, Map.of());
    }

    @Test
    void foldedBlockEqualsTheSmoothedCompensatedGraphInFp64() {
        LlamaBlock b = block();
        AbqConfig cfg = AbqConfig.authors(4, 4, false, true);
        Map<String, double[]> saved = new LinkedHashMap<>();
        // block 1 of 8: compensated (index <= 2)
        AbqParameters init = AbqParameters.restore(1, 8, b, cfg, randomSaved(b, 1, true));
        for (Param p : allParams(init)) saved.put(p.name(), p.values());
        AbqParameters p = AbqParameters.restore(1, 8, b, cfg, saved);
        assertNotNull(p.compensation);
        Var x = Var.constant(gaussian(2 * SEQ * DIM, 1.0), 2 * SEQ, DIM);
        double[] hooked = b.forward(Tape.fp64(), x, SEQ, AbqMethod.hooks(b, p, cfg, false)).output().value();

        AbqFold fold = AbqFold.of(1, 8, b, cfg, saved);
        Map<String, double[]> w = new LinkedHashMap<>();
        for (String l : b.linears()) w.put(l, fold.weight(l));
        LlamaBlock folded = new LlamaBlock(b.config(), b.rope(), fold.attnNorm(), fold.ffnNorm(), w, Map.of());
        double[] plain = folded.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE).output().value();
        double[] original = b.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE).output().value();

        double err = relative(hooked, plain), moved = relative(hooked, original);
        assertTrue(err < 1e-12, "fold error " + err);
        assertTrue(moved > 1e-3, "the compensation must change the block (else the check is vacuous): " + moved);
        for (String l : b.linears()) {
            double[] f = fold.clipFactors(l);
            assertEquals(2 * b.weight(l).rows(), f.length);
            for (double v : f) assertTrue(v > 0 && v < 1);
        }
    }

    @Test
    void foldWithoutCompensationIsAnEquivalenceOfTheFpBlock() {
        // block 3 of 8 carries no compensation (blocks 0-2 and 4-7 do): smoothing alone must leave the FP function unchanged
        LlamaBlock b = block();
        AbqConfig cfg = AbqConfig.authors(4, 4, false, false);
        Map<String, double[]> saved = randomSaved(b, 3, false);
        AbqFold fold = AbqFold.of(3, 8, b, cfg, saved);
        Map<String, double[]> w = new LinkedHashMap<>();
        for (String l : b.linears()) w.put(l, fold.weight(l));
        LlamaBlock folded = new LlamaBlock(b.config(), b.rope(), fold.attnNorm(), fold.ffnNorm(), w, Map.of());
        Var x = Var.constant(gaussian(3 * SEQ * DIM, 1.0), 3 * SEQ, DIM);
        double err = relative(b.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE).output().value(),
                folded.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE).output().value());
        assertTrue(err < 1e-12, "smoothing fold changed the FP block by " + err);
        assertTrue(relative(fold.weight("attn_v"), b.weight("attn_v").value()) > 1e-2, "the scales must move the weights");
    }

    @Test
    void prepareBuildsTheAuthorsParameterSet() {
        LlamaBlock b = block();
        SiteStats stats = fpStats(b);
        BlockSetup first = new AbqMethod(AbqConfig.authors(2, 8, true, true), 8).prepare(0, b, stats, 1);
        BlockSetup middle = new AbqMethod(AbqConfig.authors(2, 8, true, true), 8).prepare(3, b, stats, 1);
        BlockSetup last = new AbqMethod(AbqConfig.authors(2, 8, true, true), 8).prepare(4, b, stats, 1);
        assertEquals(4 + 7 + 2, first.params().size());
        assertEquals(4 + 7, middle.params().size());
        assertEquals(4 + 7 + 2, last.params().size());
        assertEquals(List.of("let", "lwc", "compensation"), first.groups().stream().map(g -> g.name()).toList());
        assertEquals(5e-3, first.groups().get(0).learningRate());
        BlockSetup rtn = new AbqMethod(AbqConfig.roundToNearest(4, 4, false), 8).prepare(0, b, stats, 1);
        assertTrue(rtn.params().isEmpty());
        // the loss runs after its pass on the same tape, and is finite
        Var x = Var.constant(gaussian(2 * SEQ * DIM, 1.0), 2 * SEQ, DIM);
        Var target = b.forward(Tape.fp32(), x, SEQ, BlockHooks.NONE).output();
        Tape t = Tape.fp32();
        double loss = first.loss().loss(t, b.forward(t, x, SEQ, first.hooks()), target).scalar();
        assertTrue(Double.isFinite(loss) && loss > 0, "loss " + loss);
        Tape other = Tape.fp32();
        assertThrows(IllegalStateException.class, () -> first.loss().loss(other, b.forward(t, x, SEQ, first.hooks()), target));
    }

    @Test
    void restoreRefusesAResultOfAnotherConfig() {
        LlamaBlock b = block();
        Map<String, double[]> lwcOnly = new LinkedHashMap<>();
        for (String l : b.linears()) lwcOnly.put("blk.0." + l + ".clip", new double[2 * b.weight(l).rows()]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AbqFold.of(0, 8, b, AbqConfig.authors(4, 4, false, true), lwcOnly));
        assertTrue(e.getMessage().contains("let.qkv"), e.getMessage());
        AbqFold rtn = AbqFold.of(0, 8, b, AbqConfig.roundToNearest(4, 4, false), Map.of());
        assertNull(rtn.clipFactors("attn_q"));
        assertEquals(0, relative(rtn.weight("ffn_down"), b.weight("ffn_down").value()));
    }

    @Test
    void configRefusals() {
        assertThrows(IllegalArgumentException.class, () -> AbqConfig.authors(4, 4, true, true)); // bit balance needs <= 2 bits
        assertThrows(IllegalArgumentException.class, () -> AbqConfig.authors(9, 4, false, true));
        assertThrows(IllegalArgumentException.class, () -> new AbqConfig(2, 8, true, true, true, true, true,
                lowbit.calibrate.DistributionCorrection.all(), 0.5, 5e-3, 1e-2, 1e-2));
        assertThrows(IllegalArgumentException.class, () -> new AbqMethod(AbqConfig.authors(4, 4, false, true), 8).prepare(0,
                new lowbit.calibrate.OptBlock(12, 14, 4, 1e-5, optTensors()), null, 1));
        assertEquals("W2*A8", AbqConfig.authors(2, 8, true, true).widths());
    }

    private Map<String, double[]> optTensors() {
        Map<String, double[]> t = new java.util.HashMap<>();
        t.put("attn_norm.weight", positive(12));
        t.put("attn_norm.bias", gaussian(12, 0.1));
        t.put("ffn_norm.weight", positive(12));
        t.put("ffn_norm.bias", gaussian(12, 0.1));
        for (String l : lowbit.calibrate.OptBlock.LINEARS) {
            int out = l.equals("ffn_up") ? 14 : 12, in = l.equals("ffn_down") ? 14 : 12;
            t.put(l + ".weight", gaussian(out * in, 0.4));
            t.put(l + ".bias", gaussian(out, 0.1));
        }
        return t;
    }

    /** Channel maxima of the FP block on random input. */
    private SiteStats fpStats(LlamaBlock b) {
        return SiteStatsFixture.collect(b, Var.constant(gaussian(2 * SEQ * DIM, 1.0), 2 * SEQ, DIM), SEQ);
    }

    /** Saved values of a calibrated block: LET scales in [0.1, 10], clip logits around 2, compensation a ~ N(0, 0.05²), b ~ 1 + N(0, 0.2²). */
    private Map<String, double[]> randomSaved(LlamaBlock b, int index, boolean compensated) {
        String p = "blk." + index + ".";
        Map<String, double[]> m = new LinkedHashMap<>();
        m.put(p + "let.qkv", logUniform(DIM));
        m.put(p + "let.out", logUniform(KV));
        m.put(p + "let.fc1", logUniform(DIM));
        m.put(p + "let.fc2", logUniform(FFN));
        for (String l : b.linears()) {
            double[] c = gaussian(2 * b.weight(l).rows(), 1.0);
            for (int i = 0; i < c.length; i++) c[i] += 2;
            m.put(p + l + ".clip", c);
        }
        if (compensated) {
            m.put(p + "ffn_down.comp.a", gaussian(DIM, 0.05));
            double[] bb = gaussian(FFN, 0.2);
            for (int i = 0; i < bb.length; i++) bb[i] += 1;
            m.put(p + "ffn_down.comp.b", bb);
        }
        return m;
    }

    private static List<Param> allParams(AbqParameters p) {
        List<Param> all = new java.util.ArrayList<>();
        for (lowbit.calibrate.ParamGroup g : p.groups()) all.addAll(g.params());
        return all;
    }

    private double[] logUniform(int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = Math.pow(10, -1 + 2 * rnd.nextDouble());
        return v;
    }

    private double[] gaussian(int n, double scale) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian() * scale;
        return v;
    }

    private double[] positive(int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = 0.6 + 0.8 * rnd.nextDouble();
        return v;
    }

    static double relative(double[] a, double[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }
}
