package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Site;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
import lowbit.quant.Gptq;
import org.junit.jupiter.api.Test;

/**
 * A FlatQuant block built for GPTQ ({@link FlatQuantBlock#build} with options): every layer, on its
 * first input, becomes the {@link FlatQuantLinear} whose weights are exactly {@link
 * ClippedWeights#gptq} of the folded FP64 weight, with the learned clip, on the Hessian of the input
 * transformed by the layer's online transform (the readers of one input sharing it); the scales,
 * bias, transform and activation quantizer are those of the round-to-nearest build, the weight-only
 * output error on those inputs is below RTN's, and later inputs run the rounded layer unchanged.
 */
class GptqPendingLinearTest {
    private static final LlamaConfig CONFIG = new LlamaConfig(1, 16, 24, 4, 2, 4, 4, 10000, 1, 1e-5f, 64, 100);

    /** Correlated inputs of width {@code k}: {@code Z·M} with a random mixing {@code M}. */
    private static float[] inputs(Random rnd, int tokens, int k) {
        double[] m = TestBlocks.gaussian(rnd, k * k, 1);
        float[] x = new float[tokens * k];
        for (int t = 0; t < tokens; t++) {
            double[] z = TestBlocks.gaussian(rnd, k, 1);
            for (int j = 0; j < k; j++) {
                double s = 0;
                for (int i = 0; i < k; i++) s += z[i] * m[i * k + j];
                x[t * k + j] = (float) s;
            }
        }
        return x;
    }

    /** {@code ‖xt·(Ŵ − W)ᵀ‖_F}: the weight rounding's output error on the transformed inputs. */
    private static double weightError(float[] xt, int tokens, double[] w, ClippedWeights q) {
        int n = q.rows(), k = q.cols();
        double e = 0;
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < n; r++) {
                double d = 0;
                for (int c = 0; c < k; c++) d += xt[t * k + c] * (q.codes()[r * k + c] * (double) q.scales()[r] - w[r * k + c]);
                e += d * d;
            }
        }
        return Math.sqrt(e);
    }

    @Test
    void layersRoundByGptqOnTheirFirstInput() {
        Random rnd = new Random(21);
        int tokens = 53;
        for (QuantScheme scheme : List.of(QuantScheme.w4a8(), QuantScheme.w4a4())) {
            LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of("attn_q", "ffn_up"));
            BlockTransforms t = new BlockTransforms("blk.0.", block, null, scheme, BlockTransforms.DEFAULT_ALPHA, 5);
            TestBlocks.randomize(t, rnd);
            LlamaBlock folded = Folding.fold(block, t);
            Gptq.Options options = Gptq.Options.defaults().withBlockSize(5);
            try (Context ctx = Context.open(Backend.CPU)) {
                FlatQuantBlock rtn = FlatQuantBlock.build(ctx, block, t, scheme);
                FlatQuantBlock pending = FlatQuantBlock.build(ctx, block, t, scheme, options);
                try {
                    Map<Site, float[]> x = new LinkedHashMap<>();
                    for (String l : block.linears()) {
                        GptqPendingLinear p = (GptqPendingLinear) pending.layers().get(l);
                        IllegalStateException e = assertThrows(IllegalStateException.class, p::resolved);
                        assertTrue(e.getMessage().contains(l), e.getMessage());
                        float[] in = x.computeIfAbsent(FlatQuantBlock.inputOf(l), s -> inputs(rnd, tokens, p.inFeatures()));
                        float[] y = new float[tokens * p.outFeatures()];
                        java.util.Arrays.fill(y, Float.NaN);
                        p.forward(in, tokens, y);
                        FlatQuantLinear g = p.resolved();
                        FlatQuantLinear r = (FlatQuantLinear) rtn.layers().get(l);
                        assertArrayEquals(g.simulate(in, tokens), y, l + ": the first forward runs the rounded layer");
                        assertEquals(r.transform(), g.transform(), l);
                        assertArrayEquals(r.bias(), g.bias(), l);
                        assertEquals(r.activations().toString(), g.activations().toString(), l);
                        assertArrayEquals(r.weights().scales(), g.weights().scales(), l + ": the learned clip's scales");
                        float[] xt = g.transformed(in, tokens);
                        double[] w = folded.weight(l).value();
                        ClippedWeights want = ClippedWeights.gptq(w, g.outFeatures(), g.inFeatures(), scheme.weights().bits(), t.weightClip(l).factors(),
                                Gptq.hessian(xt, tokens, g.inFeatures()), options);
                        assertArrayEquals(want.codes(), g.weights().codes(), l + ": GPTQ codes of the folded weight on the transformed inputs");
                        double eg = weightError(xt, tokens, w, g.weights()), er = weightError(xt, tokens, w, r.weights());
                        assertTrue(eg < er, scheme.name() + " " + l + ": GPTQ weight error " + eg + " vs RTN " + er);
                        float[] again = inputs(rnd, 3, p.inFeatures());
                        float[] y2 = new float[3 * p.outFeatures()];
                        p.forward(again, 3, y2);
                        assertArrayEquals(g.simulate(again, 3), y2, l + ": later inputs run the same layer");
                        assertEquals(g, p.resolved());
                    }
                } finally {
                    for (LinearOp op : rtn.layers().values()) op.close();
                    for (LinearOp op : pending.layers().values()) op.close();
                }
            }
        }
    }

    @Test
    void readersOfOneInputShareItsHessian() {
        Random rnd = new Random(22);
        float[] x = inputs(rnd, 19, 16);
        GptqPendingLinear.SharedHessian shared = new GptqPendingLinear.SharedHessian(3);
        double[] first = shared.of(x, 19, 16, null);
        assertTrue(first == shared.of(x.clone(), 19, 16, null), "the same input reuses the Hessian");
        float[] other = x.clone();
        other[40] += 1;
        double[] h = shared.of(other, 19, 16, null);
        assertArrayEquals(Gptq.hessian(other, 19, 16), h, "another input gets its own Hessian");
        assertThrows(IllegalArgumentException.class, () -> new GptqPendingLinear.SharedHessian(0));
    }
}
