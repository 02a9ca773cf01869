package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import lowbit.Backend;
import lowbit.Context;
import lowbit.io.RealModelFixture;
import lowbit.model.KvCache;
import lowbit.model.LlamaModel;
import lowbit.quant.CalibrationStats;
import lowbit.quant.FlattenPlan;
import lowbit.quant.QuantConfig;
import lowbit.quant.QuantizedLinear;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole-model pipeline on the real SmolLM2-135M (skipped, visibly, when the model cannot be
 * fetched): smoothing folded into norms keeps the function, calibration keys shared inputs, the
 * quantized model file round-trips bit for bit and rejects other versions and malformed files.
 * Sizes are kept small (a 2-core machine): 48 calibration tokens, 12 evaluated tokens.
 */
class RealModelPipelineTest {
    private static final int[] PROMPT = {504, 3458, 282, 4195, 314, 253, 1345, 28, 359, 357, 1485, 30};
    private static Context ctx;
    private static ModelCalibration calibration;

    @BeforeAll
    static void calibrate() throws IOException {
        ctx = Context.open(Backend.CPU);
        LlamaModel model = load();
        int[] tokens = new int[48];
        for (int i = 0; i < tokens.length; i++) tokens[i] = PROMPT[i % PROMPT.length] + i;
        calibration = ModelCalibration.run(model, tokens, 24, CalibrationStats.Options.defaults().withSampleTokens(16), null);
    }

    @AfterAll
    static void close() {
        ctx.close();
    }

    private static LlamaModel load() throws IOException {
        return LlamaModel.load(RealModelFixture.gguf());
    }

    private static float[] logits(lowbit.model.DecoderModel m) {
        return m.forward(m.newKvCache(PROMPT.length), PROMPT);
    }

    @Test
    void calibrationSharesOneStatsPerInput() {
        assertEquals(48, calibration.tokens());
        assertTrue(calibration.statsFor("blk.3.attn_q") == calibration.statsFor("blk.3.attn_v"));
        assertTrue(calibration.statsFor("blk.3.ffn_gate") == calibration.statsFor("blk.3.ffn_up"));
        assertTrue(calibration.statsFor("blk.3.ffn_gate") != calibration.statsFor("blk.3.attn_q"));
        assertEquals(1536, calibration.statsFor("blk.3.ffn_down").channels());
        assertEquals(48, calibration.statsFor("blk.29.attn_output").tokens());
        assertThrows(IllegalArgumentException.class, () -> ModelCalibration.inputOf("output"));
    }

    @Test
    void foldedSmoothingKeepsTheModelsFunction() throws IOException {
        LlamaModel model = load();
        float[] before = logits(model);
        SplittableRandom r = new SplittableRandom(1);
        for (int b : new int[] {0, 7, 29}) {
            for (String norm : List.of("attn_norm", "ffn_norm")) {
                double[] s = new double[576];
                for (int j = 0; j < s.length; j++) s[j] = Math.exp(r.nextGaussian()); // factors ~ 0.1 .. 10
                List<String> consumers = norm.equals("attn_norm")
                        ? List.of("blk." + b + ".attn_q", "blk." + b + ".attn_k", "blk." + b + ".attn_v")
                        : List.of("blk." + b + ".ffn_gate", "blk." + b + ".ffn_up");
                ModelQuantizer.foldIntoNorm(model, "blk." + b + "." + norm, consumers, s);
            }
        }
        float[] after = logits(model);
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < before.length; i++) {
            maxRef = Math.max(maxRef, Math.abs(before[i]));
            maxDiff = Math.max(maxDiff, Math.abs(before[i] - after[i]));
        }
        // FP32 rounding of g/s and W*s only: logits agree to ~1e-5 of their scale
        assertTrue(maxDiff <= 2e-4 * maxRef, "max |Δlogit| " + maxDiff + " vs max |logit| " + maxRef);
        assertThrows(IllegalArgumentException.class,
                () -> ModelQuantizer.foldIntoNorm(model, "blk.1.attn_norm", List.of("blk.1.ffn_up"), new double[576]));
    }

    @Test
    void baselineFileRoundTripsBitForBit(@TempDir Path dir) throws IOException {
        for (QuantMethod method : List.of(QuantMethod.W8A8_STATIC, QuantMethod.W4A8_RTN)) {
            Path file = dir.resolve(method.id() + ".safetensors");
            float[] expect;
            try (QuantizedModel q = new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, null).quantize(load(), calibration, method)) {
                assertEquals(210, q.layers().size());
                expect = logits(q.model());
                QuantizedModelFile.save(q, file);
            }
            try (QuantizedModel loaded = QuantizedModelFile.load(file, load(), ctx)) {
                assertEquals(method, loaded.method());
                assertEquals(210, loaded.report().rows().size());
                assertArrayEquals(expect, logits(loaded.model()), method.id());
            }
        }
    }

    @Test
    void flattenQuantFileKeepsPlansNormsAndLogits(@TempDir Path dir) throws IOException {
        QuantConfig quick = QuantConfig.defaults().withThresholdCandidates(2).withSmoothingAlphas(0.5)
                .withClipSearch(QuantConfig.ClipSearch.NONE);
        Path file = dir.resolve("mixed.safetensors");
        float[] expect;
        int expanded;
        try (QuantizedModel q = new ModelQuantizer(quick, ctx, null).quantize(load(), calibration, QuantMethod.FLATTEN_MIXED)) {
            double share = q.report().share(lowbit.quant.Precision.INT4);
            assertTrue(share >= 0.4829 && share < 0.6, "INT4 share " + share);
            expect = logits(q.model());
            expanded = ((QuantizedLinear) q.layers().get("blk.5.ffn_down")).plan().expandedFeatures();
            QuantizedModelFile.save(q, file);
        }
        try (QuantizedModel loaded = QuantizedModelFile.load(file, load(), ctx)) {
            assertArrayEquals(expect, logits(loaded.model()));
            assertEquals(expanded, ((QuantizedLinear) loaded.layers().get("blk.5.ffn_down")).plan().expandedFeatures());
            assertEquals(60, loaded.foldedAlphas().size());
        }
    }

    @Test
    void rejectsOtherVersionsAndMalformedFiles(@TempDir Path dir) throws IOException {
        Path good = dir.resolve("good.safetensors");
        try (QuantizedModel q = new ModelQuantizer(ModelQuantizer.defaultConfig(), null, null)
                .quantize(load(), calibration, QuantMethod.W8A8_TOKEN)) {
            QuantizedModelFile.save(q, good);
        }
        byte[] bytes = Files.readAllBytes(good);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);

        // version 2 (DGQ layers) is read too; an unknown version is refused
        Path v7 = dir.resolve("v7.safetensors");
        Files.write(v7, withHeader(bytes, headerLength, header.replace("\\\"version\\\":1", "\\\"version\\\":7")));
        IOException e = assertThrows(IOException.class, () -> QuantizedModelFile.load(v7, load(), null));
        assertTrue(e.getMessage().contains("version 7"), e.getMessage());

        Path other = dir.resolve("other.safetensors");
        Files.write(other, withHeader(bytes, headerLength, header.replace("lowbit-quantized-model", "lowbit-quantized-modem")));
        e = assertThrows(IOException.class, () -> QuantizedModelFile.load(other, load(), null));
        assertTrue(e.getMessage().contains("format"), e.getMessage());

        Path truncated = dir.resolve("truncated.safetensors");
        Files.write(truncated, java.util.Arrays.copyOf(bytes, bytes.length - 100));
        assertThrows(IOException.class, () -> QuantizedModelFile.load(truncated, load(), null));

        Path notOurs = dir.resolve("plain.safetensors");
        Files.write(notOurs, withHeader(bytes, headerLength, header.replace("\"lowbit\":", "\"lowbix\":")));
        e = assertThrows(IOException.class, () -> QuantizedModelFile.load(notOurs, load(), null));
        assertTrue(e.getMessage().contains("not a lowbit quantized model"), e.getMessage());
    }

    /** The file with its header replaced by {@code header} of the same length (the edits keep lengths). */
    private static byte[] withHeader(byte[] file, long headerLength, String header) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        assertEquals(headerLength, h.length, "test edit must keep the header length");
        byte[] out = file.clone();
        System.arraycopy(h, 0, out, 8, h.length);
        return out;
    }

    @Test
    void quantizingTwiceOrFpIsRefused() throws IOException {
        LlamaModel model = load();
        ModelQuantizer mq = new ModelQuantizer(ModelQuantizer.defaultConfig(), null, null);
        assertThrows(IllegalArgumentException.class, () -> mq.quantize(model, calibration, QuantMethod.FP));
        model.replaceLinear("blk.0.attn_q", QuantizedLinear.create(new float[576 * 576], null, 576, 576,
                FlattenPlan.identity(576), lowbit.quant.Precision.INT8, true, QuantizedLinear.DYNAMIC));
        assertThrows(IllegalStateException.class, () -> mq.quantize(model, calibration, QuantMethod.W8A8_STATIC));
        assertThrows(IllegalArgumentException.class, () -> QuantMethod.parse("w3a3"));
    }
}
