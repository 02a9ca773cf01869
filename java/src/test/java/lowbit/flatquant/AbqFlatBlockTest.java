package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.abq.AbqFlatBlock;
import lowbit.abq.AbqFlatScheme;
import lowbit.abq.IntCodes;
import lowbit.abq.TransformedAbqLinear;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Param;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/**
 * {@link AbqFlatBlock} (ABQ bit-plane layers on FlatQuant's transforms; in this package for {@link
 * TestBlocks}) against FlatQuant's own inference block on a small random block with randomized
 * calibrated parameters: at W8A8 symmetric it folds the same norms, carries the same online
 * transforms and activation clips, quantizes the activations to the same codes, and its weight codes
 * differ only where FlatQuant's grid uses its extra level −128 (the bit-plane layers stop at −127)
 * or by one step on a rounding tie; the outputs agree to the size of those differences. At W6A6 the
 * layers run and stay near the W8A8 ones.
 */
class AbqFlatBlockTest {
    // dim 16 -> (4, 4), ffn 24 -> (4, 6), 4 heads of 4 over 2 KV heads
    private static final LlamaConfig CONFIG = new LlamaConfig(1, 16, 24, 4, 2, 4, 2, 10000, 1, 1e-5f, 64, 100);

    private static Map<String, double[]> params(BlockTransforms t) {
        Map<String, double[]> m = new HashMap<>();
        for (Param p : t.params()) m.put(p.name(), p.values());
        return m;
    }

    @Test
    void w8a8MatchesFlatQuantsInferenceBlock() {
        Random rnd = new Random(4);
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of("attn_q", "ffn_down"));
        BlockTransforms t = new BlockTransforms("t.", block, null, QuantScheme.w8a8(), BlockTransforms.DEFAULT_ALPHA, 7);
        TestBlocks.randomize(t, rnd);
        try (Context ctx = Context.open(Backend.CPU)) {
            AbqFlatBlock abq = AbqFlatBlock.build(ctx, block, t, params(t), "t.", new AbqFlatScheme(8, 8, false));
            FlatQuantBlock fq = FlatQuantBlock.build(ctx, block, t, QuantScheme.w8a8());
            try {
                assertArrayEquals(fq.attnNorm(), abq.attnNorm());
                assertArrayEquals(fq.ffnNorm(), abq.ffnNorm());
                assertEquals(fq.layers().keySet(), abq.layers().keySet());
                for (String l : block.linears()) {
                    FlatQuantLinear ref = (FlatQuantLinear) fq.layers().get(l);
                    TransformedAbqLinear got = abq.layers().get(l);
                    assertEquals(ref.transform(), got.transform(), l + ": online transform");
                    assertEquals(ref.activations().clipHi(), got.clipHi(), l);
                    assertEquals(ref.activations().clipLo(), got.clipLo(), l);
                    int k = got.inFeatures(), n = got.outFeatures(), tokens = 11;
                    // weights: the same codes but for FlatQuant's -128 and float32-vs-FP64 rounding ties
                    int[] wRef = ref.weights().codes();
                    IntCodes w = got.layer().weights();
                    int ties = 0;
                    for (int r = 0; r < n; r++) {
                        for (int c = 0; c < k; c++) {
                            int a = wRef[r * k + c], b = w.code(r, c);
                            if (a == b || (a == -128 && b == -127)) continue;
                            assertEquals(1, Math.abs(a - b), l + ": weight code " + r + "," + c + ": " + b + " vs FlatQuant's " + a);
                            ties++;
                        }
                        assertEquals(ref.weights().scales()[r], w.scale(r, 0), 1e-6 * ref.weights().scales()[r], l + ": scale of row " + r);
                    }
                    assertTrue(ties <= n * k / 100, l + ": " + ties + " rounding ties of " + n * k);
                    // activations: identical codes and scales
                    float[] x = new float[tokens * k];
                    for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * (i % k == 2 ? 12 : 1));
                    FlatQuantLinear.ActivationCodes a = ref.simulateCodes(x, tokens);
                    IntCodes qa = got.activationCodes(x, tokens);
                    for (int tk = 0; tk < tokens; tk++) {
                        assertEquals(a.scales()[tk], qa.scale(tk, 0), l + ": activation scale " + tk);
                        for (int c = 0; c < k; c++) assertEquals(a.codes()[tk * k + c], qa.code(tk, c), l + ": activation code " + tk + "," + c);
                    }
                    float[] y = new float[tokens * n], yRef = new float[tokens * n];
                    got.forward(x, tokens, y);
                    ref.forward(x, tokens, yRef);
                    double err = TestBlocks.relativeError(toDouble(y), toDouble(yRef));
                    // the -128 codes (negative weights beyond the clip: many at these random clips, σ ≈ 0.82) are one
                    // step of 127 apart, a few 1e-3 of the output
                    assertTrue(err < 1e-2, l + ": relative difference " + err + " from FlatQuant's layer");
                }
            } finally {
                close(abq.layers());
                close(fq.layers());
            }
        }
    }

    @Test
    void w6a6LayersRunNearW8a8() {
        Random rnd = new Random(6);
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of());
        for (boolean asym : new boolean[] {false, true}) {
            AbqFlatScheme scheme = new AbqFlatScheme(6, 6, asym);
            BlockTransforms t = new BlockTransforms("blk.3.", block, null, scheme.calibrationScheme(), BlockTransforms.DEFAULT_ALPHA, 5);
            TestBlocks.randomize(t, rnd);
            try (Context ctx = Context.open(Backend.CPU)) {
                AbqFlatBlock six = AbqFlatBlock.build(ctx, block, t, params(t), "blk.3.", scheme);
                AbqFlatBlock eight = AbqFlatBlock.build(ctx, block, t, params(t), "blk.3.", new AbqFlatScheme(8, 8, asym));
                try {
                    for (String l : block.linears()) {
                        TransformedAbqLinear a = six.layers().get(l), b = eight.layers().get(l);
                        assertEquals(6, a.layer().weights().planes(), l);
                        assertEquals(6, a.layer().activations().bits(), l);
                        assertEquals(asym, a.layer().activations().isAsymmetric(), l);
                        int tokens = 5, k = a.inFeatures();
                        float[] x = new float[tokens * k];
                        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
                        float[] y6 = new float[tokens * a.outFeatures()], y8 = new float[y6.length];
                        a.forward(x, tokens, y6);
                        b.forward(x, tokens, y8);
                        double err = TestBlocks.relativeError(toDouble(y6), toDouble(y8));
                        assertTrue(err > 0 && err < 0.15, l + (asym ? " asym" : " sym") + ": W6A6 vs W8A8 relative difference " + err);
                    }
                } finally {
                    close(six.layers());
                    close(eight.layers());
                }
            }
        }
    }

    @Test
    void missingOrMisshapenWeightClipThrows() {
        Random rnd = new Random(9);
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of());
        BlockTransforms t = new BlockTransforms("t.", block, null, QuantScheme.w6a6(), BlockTransforms.DEFAULT_ALPHA, 1);
        AbqFlatScheme scheme = new AbqFlatScheme(6, 6, false);
        try (Context ctx = Context.open(Backend.CPU)) {
            Map<String, double[]> p = params(t);
            p.remove("t.ffn_up.wclip");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AbqFlatBlock.build(ctx, block, t, p, "t.", scheme));
            assertTrue(e.getMessage().contains("t.ffn_up.wclip"), e.getMessage());
            Map<String, double[]> q = params(t);
            q.put("t.attn_k.wclip", new double[3]);
            assertThrows(IllegalArgumentException.class, () -> AbqFlatBlock.build(ctx, block, t, q, "t.", scheme));
            assertThrows(IllegalArgumentException.class, () -> AbqFlatBlock.build(ctx, block, t, params(t), "wrong.", scheme), "wrong prefix");
            assertThrows(IllegalArgumentException.class, () -> AbqFlatBlock.build(null, block, t, params(t), "t.", scheme), "no context");
        }
        assertThrows(IllegalArgumentException.class, () -> new AbqFlatScheme(6, 9, false));
        assertThrows(IllegalArgumentException.class, () -> new AbqFlatScheme(1, 6, true));
    }

    @Test
    void gptqWithDiagonalHessiansIsRoundToNearestAndNeedsEveryInput() {
        Random rnd = new Random(13);
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of());
        AbqFlatScheme scheme = new AbqFlatScheme(6, 6, true, true);
        BlockTransforms t = new BlockTransforms("t.", block, null, scheme.calibrationScheme(), BlockTransforms.DEFAULT_ALPHA, 2);
        TestBlocks.randomize(t, rnd);
        Map<String, double[]> h = new HashMap<>();
        for (String input : List.of("attn_q", "attn_output", "ffn_gate", "ffn_down")) {
            int k = input.equals("ffn_down") ? CONFIG.ffnDim() : CONFIG.dim();
            double[] d = new double[k * k];
            for (int j = 0; j < k; j++) d[j * k + j] = 1 + j;
            h.put(input, d);
        }
        try (Context ctx = Context.open(Backend.CPU)) {
            AbqFlatBlock gptq = AbqFlatBlock.build(ctx, block, t, params(t), "t.", scheme, h);
            AbqFlatBlock rtn = AbqFlatBlock.build(ctx, block, t, params(t), "t.", new AbqFlatScheme(6, 6, true));
            try {
                for (String l : block.linears()) {
                    assertArrayEquals(rtn.layers().get(l).layer().weights().codes(), gptq.layers().get(l).layer().weights().codes(), l);
                }
            } finally {
                close(gptq.layers());
                close(rtn.layers());
            }
            h.remove("ffn_down");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AbqFlatBlock.build(ctx, block, t, params(t), "t.", scheme, h));
            assertTrue(e.getMessage().contains("ffn_down"), e.getMessage());
        }
    }

    private static void close(Map<String, ? extends LinearOp> layers) {
        for (LinearOp op : layers.values()) op.close();
    }

    private static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }
}
