package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/**
 * ABQ-LLM's distribution-correction loss on a small GQA LLaMA block (2 sequences of 5 tokens, odd
 * FFN width): each switch adds exactly its term (computed here from {@link Losses} on the FP block
 * run separately), the FP reference is the block fed the same input, the whole loss has correct
 * gradients for a learnable scale (FP64 central differences), and the blocks expose the same
 * attention maps and outputs with the input-aware hooks as without.
 */
class DistributionCorrectionTest {
    private static final int SEQ = 5;
    private final Random rnd = new Random(23);

    private LlamaBlock block() {
        LlamaConfig c = new LlamaConfig(1, 12, 11, 4, 2, 3, 2, 10000, 1, 1e-5f, 64, 100);
        Map<String, double[]> w = new LinkedHashMap<>();
        int[][] shapes = {{12, 12}, {6, 12}, {6, 12}, {12, 12}, {11, 12}, {11, 12}, {12, 11}};
        String[] names = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        for (int i = 0; i < names.length; i++) w.put(names[i], GradCheck.input(rnd, shapes[i][0], shapes[i][1], 0.5).value);
        double[] g = new double[12];
        for (int i = 0; i < 12; i++) g[i] = 0.6 + 0.8 * rnd.nextDouble();
        return new LlamaBlock(c, RotaryEmbedding.of(c, null), g, g.clone(), w, Map.of());
    }

    /** A smooth stand-in for quantization: the attention input divided by a learnable scale (the weights untouched). */
    private static BlockHooks scaled(Param s) {
        return tape -> new BlockHooks.Pass() {
            @Override
            public Var activation(Site site, Var x) {
                return site == Site.ATTN_IN || site == Site.FFN_DOWN_IN && x.cols == s.var().cols ? MatrixOps.scaleColumns(tape, x, s.var(), true) : x;
            }
        };
    }

    private Param scale() {
        double[] v = new double[12];
        for (int i = 0; i < 12; i++) v[i] = 0.8 + 0.4 * rnd.nextDouble();
        return new Param("s", v, 1, 12);
    }

    @Test
    void eachSwitchAddsExactlyItsTerm() {
        LlamaBlock b = block();
        Param s = scale();
        Var x = GradCheck.input(rnd, 2 * SEQ, 12, 1);
        // the target: the FP block on another (the "FP stream's") input, as with quantizedInputs
        Var xFp = new Var(x.value.clone(), x.rows, x.cols, false);
        for (int i = 0; i < xFp.value.length; i++) xFp.value[i] += 0.1 * rnd.nextGaussian();
        Var target = b.forward(Tape.fp64(), xFp, SEQ, BlockHooks.NONE).output();
        BlockPass fpOnX = b.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE);
        BlockPass q = b.forward(Tape.fp64(), x, SEQ, scaled(s));
        double kl = Losses.symmetricKl(Tape.fp64(), fpOnX.attention(), q.attention()).scalar();
        double mse = Losses.mse(Tape.fp64(), q.output(), target).scalar();
        double mseQin = Losses.mse(Tape.fp64(), q.output(), fpOnX.output()).scalar();
        double cos = Losses.negLogCosine(Tape.fp64(), q.output(), target).scalar();
        double cosQin = Losses.negLogCosine(Tape.fp64(), q.output(), fpOnX.output()).scalar();
        double[] terms = {kl, mse, mseQin, cos, cosQin};
        for (double t : terms) assertTrue(t > 1e-8, "each term must be non-trivial here: " + java.util.Arrays.toString(terms));
        for (int mask = 1; mask < 32; mask++) {
            DistributionCorrection dc = new DistributionCorrection((mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0, (mask & 8) != 0, (mask & 16) != 0);
            double expected = 0;
            for (int i = 0; i < 5; i++) if ((mask & (1 << i)) != 0) expected += terms[i];
            BlockSetup setup = dc.setup(b, scaled(s), List.of());
            Tape t = Tape.fp64();
            double got = setup.loss().loss(t, b.forward(t, x, SEQ, setup.hooks()), target).scalar();
            assertEquals(expected, got, 1e-12 * Math.abs(expected), dc.toString());
        }
    }

    @Test
    void gradientOfTheWholeLoss() {
        LlamaBlock b = block();
        Param s = scale();
        Var x = GradCheck.input(rnd, 2 * SEQ, 12, 1);
        Var target = b.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE).output();
        BlockSetup setup = DistributionCorrection.all().setup(b, scaled(s), List.of(new ParamGroup("s", 1e-3, 0, List.of(s))));
        GradCheck.check("distribution correction", List.of(s.var()), t -> setup.loss().loss(t, b.forward(t, x, SEQ, setup.hooks()), target), 31);
    }

    @Test
    void inputAwareHooksChangeNothing() {
        LlamaBlock b = block();
        Var x = GradCheck.input(rnd, 2 * SEQ, 12, 1);
        BlockPass plain = b.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE);
        Var[] seen = new Var[1];
        BlockPass aware = b.forward(Tape.fp64(), x, SEQ, tape -> new InputAwarePass() {
            @Override
            public void input(Var in, int seqLen) {
                seen[0] = in;
                assertEquals(SEQ, seqLen);
            }
        });
        assertTrue(seen[0] == x);
        assertTrue(java.util.Arrays.equals(plain.output().value, aware.output().value));
        assertTrue(java.util.Arrays.equals(plain.attention().value, aware.attention().value));
        assertEquals(2 * 4 * SEQ, plain.attention().rows);
    }

    @Test
    void refusals() {
        assertThrows(IllegalArgumentException.class, () -> new DistributionCorrection(false, false, false, false, false));
        LlamaBlock b = block();
        Var x = GradCheck.input(rnd, 2 * SEQ, 12, 1);
        BlockPass q = b.forward(Tape.fp64(), x, SEQ, BlockHooks.NONE);
        assertThrows(IllegalArgumentException.class, () -> DistributionCorrection.all().loss(Tape.fp64(), q, q.output(), null));
        assertTrue(!DistributionCorrection.none().needsFpOnInput());
        assertEquals("dc[kl, mse, mse-qin, cos, cos-qin]", DistributionCorrection.all().toString());
    }
}
