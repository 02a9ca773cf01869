package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import lowbit.Backend;
import lowbit.Context;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.flatquant.FlatQuantLinear;
import lowbit.flatquant.QuantScheme;
import lowbit.model.DecoderModel;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
import lowbit.model.LlamaModel;
import lowbit.quant.Gptq;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The FlatQuant GPTQ methods on a tiny random LLaMA ({@link TinyLlama}), through {@link
 * FlatQuantQuantizer#build} with calibration parameters moved away from their start: every block
 * layer ends as a {@link FlatQuantLinear} with the RTN build's scales and different codes, the
 * quantized model's hidden states on the GPTQ tokens are closer to FP than RTN's (W4A8), the report
 * is complete, the model file round-trips bit for bit, and missing or misplaced GPTQ tokens are refused.
 */
class FlatQuantGptqTest {
    private static Context ctx;

    @TempDir
    Path tmp;

    @BeforeAll
    static void open() {
        ctx = Context.open(Backend.CPU);
    }

    @AfterAll
    static void close() {
        ctx.close();
    }

    private static QuantizedModel build(Path dir, QuantMethod method, int[] gptqTokens) throws IOException {
        LlamaModel blocks = TinyLlama.load(dir);
        LlamaConfig c = blocks.config();
        QuantScheme scheme = method.flatQuantScheme(c.headDim());
        RotaryEmbedding rope = RotaryEmbedding.of(c, null);
        return FlatQuantQuantizer.build(ctx, TinyLlama.load(dir), c, b -> LlamaBlock.fromModel(blocks, b, rope), method, scheme, java.util.Set.of(),
                FlatQuantFileTest.params(blocks, scheme, 99, 2), TinyLlama.tokens(24, 1), method.description() + "; test parameters", 1234, gptqTokens,
                Gptq.Options.defaults(), null);
    }

    private static double hiddenError(DecoderModel m, float[] fp, int[] tokens) {
        float[] h = m.forwardHidden(m.newKvCache(tokens.length), tokens);
        double e = 0, n = 0;
        for (int i = 0; i < fp.length; i++) {
            e += (h[i] - fp[i]) * (double) (h[i] - fp[i]);
            n += fp[i] * (double) fp[i];
        }
        return e / n;
    }

    @Test
    void gptqModelsBeatRtnAndRoundTrip() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 7);
        int[] gptqTokens = TinyLlama.tokens(60, 3);
        int[] prompt = TinyLlama.tokens(13, 9);
        DecoderModel fpModel = TinyLlama.load(dir);
        float[] fp = fpModel.forwardHidden(fpModel.newKvCache(gptqTokens.length), gptqTokens);
        QuantMethod[][] pairs = {{QuantMethod.FLATQUANT_W4A8_GPTQ, QuantMethod.FLATQUANT_W4A8}, {QuantMethod.FLATQUANT_W4A4_KV4_GPTQ, QuantMethod.FLATQUANT_W4A4_KV4}};
        for (QuantMethod[] pair : pairs) {
            String what = pair[0].id();
            Path file = tmp.resolve(what + ".safetensors");
            try (QuantizedModel g = build(dir, pair[0], gptqTokens); QuantizedModel r = build(dir, pair[1], null)) {
                int changed = 0;
                for (Map.Entry<String, LinearOp> e : g.layers().entrySet()) {
                    assertTrue(e.getValue() instanceof FlatQuantLinear, what + " " + e.getKey() + " is " + e.getValue());
                    assertTrue(g.model().linear(e.getKey()) == e.getValue(), what + " " + e.getKey() + ": the model runs the rounded layer");
                    FlatQuantLinear gl = (FlatQuantLinear) e.getValue(), rl = (FlatQuantLinear) r.layers().get(e.getKey());
                    assertArrayEquals(rl.weights().scales(), gl.weights().scales(), what + " " + e.getKey() + ": same scales");
                    if (!java.util.Arrays.equals(rl.weights().codes(), gl.weights().codes())) changed++;
                }
                assertEquals(g.layers().size(), changed, what + ": GPTQ changes the codes of every layer");
                assertEquals(pair[0].id().contains("kv4"), g.kvCodec() != null, what + ": KV codec");
                for (QuantizationReport.Row row : g.report().rows()) assertTrue(Double.isFinite(row.relativeError()), what + " " + row.layer());
                assertEquals(r.report().rows().size(), g.report().rows().size());
                double eg = hiddenError(g.model(), fp, gptqTokens), er = hiddenError(r.model(), fp, gptqTokens);
                System.out.printf("%s: relative hidden-state error on the GPTQ tokens %.4g (RTN %.4g)%n", what, eg, er);
                if (pair[0] == QuantMethod.FLATQUANT_W4A8_GPTQ) assertTrue(eg < er, what + ": " + eg + " vs RTN " + er);
                float[][] expect = FlatQuantFileTest.run(g.model(), prompt, 17);
                QuantizedModelFile.save(g, file);
                try (QuantizedModel loaded = QuantizedModelFile.load(file, TinyLlama.load(dir), ctx)) {
                    assertEquals(pair[0], loaded.method());
                    float[][] got = FlatQuantFileTest.run(loaded.model(), prompt, 17);
                    for (int p = 0; p < expect.length; p++) {
                        for (int i = 0; i < expect[p].length; i++) {
                            assertEquals(Float.floatToIntBits(expect[p][i]), Float.floatToIntBits(got[p][i]), what + " after reload: pass " + p + ", logit " + i);
                        }
                    }
                    for (Map.Entry<String, LinearOp> e : g.layers().entrySet()) {
                        assertArrayEquals(((FlatQuantLinear) e.getValue()).weights().codes(), ((FlatQuantLinear) loaded.layers().get(e.getKey())).weights().codes());
                    }
                }
            }
        }
    }

    @Test
    void gptqTokensAreRequiredWhereUsedOnly() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> build(dir, QuantMethod.FLATQUANT_W4A4_GPTQ, null));
        assertTrue(e.getMessage().contains("GPTQ"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> build(dir, QuantMethod.FLATQUANT_W4A4, TinyLlama.tokens(8, 1)));
        e = assertThrows(IllegalArgumentException.class, () -> build(dir, QuantMethod.FLATQUANT_W4A4_GPTQ, TinyLlama.tokens(TinyLlama.CONFIG.contextLength() + 1, 1)));
        assertTrue(e.getMessage().contains("context length"), e.getMessage());
        assertEquals("flatquant-w4a4-kv4", FlatQuantQuantizer.calibrationName(QuantMethod.FLATQUANT_W4A4_KV4_GPTQ));
        assertEquals("flatquant-w8a8", FlatQuantQuantizer.calibrationName(QuantMethod.FLATQUANT_W8A8));
    }
}
