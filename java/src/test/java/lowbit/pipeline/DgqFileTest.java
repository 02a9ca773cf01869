package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.dgq.ActivationMode;
import lowbit.dgq.DgqLinear;
import lowbit.dgq.DgqQuantizedWeights;
import lowbit.io.HfCheckpoint;
import lowbit.io.SafetensorsDType;
import lowbit.model.LinearOp;
import lowbit.model.OptModel;
import lowbit.model.OptModelTest;
import lowbit.quant.CalibrationStats;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DGQ through the pipeline on tiny random OPT models (no download): pre-norm (smoothing folded into
 * the LayerNorms for q/k/v and fc1) and post-norm (smoothing explicit everywhere); the quantized
 * model file stores DGQ layers as version 2, reloads them bit for bit and refuses malformed DGQ
 * entries with a clear message. K = 16 and 40 are below G, so every row is one partial group.
 */
class DgqFileTest {
    private static final ObjectMapper JSON = new ObjectMapper();
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

    private static float[] logits(lowbit.model.DecoderModel m, int[] t) {
        return m.logits(m.forwardHidden(m.newKvCache(t.length), t), t.length);
    }

    private QuantizedModel quantize(Path dir, QuantMethod method) throws IOException {
        OptModel fp = load(dir);
        ModelCalibration cal = ModelCalibration.run(fp, tokens(72, 3), 24, CalibrationStats.Options.defaults().withSampleTokens(24), null);
        return new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, null).withDgqGrids(5, 12).quantize(load(dir), cal, method);
    }

    @Test
    void dgqModelsRoundTripBitForBitWithFoldedAndExplicitSmoothing() throws IOException {
        int[] prompt = tokens(20, 11);
        for (boolean preNorm : new boolean[] {true, false}) {
            Path dir = OptModelTest.writeTinyOpt(tmp.resolve("opt" + preNorm), 21, "model.decoder.", preNorm, SafetensorsDType.F32);
            float[] fpLogits = logits(load(dir), prompt);
            for (QuantMethod method : new QuantMethod[] {QuantMethod.DGQ, QuantMethod.DGQ_AUTHORS}) {
                String what = method.id() + (preNorm ? " pre-norm" : " post-norm");
                Path file = tmp.resolve(method.id() + preNorm + ".safetensors");
                float[] expect;
                Map<String, LinearOp> before;
                try (QuantizedModel q = quantize(dir, method)) {
                    assertEquals(OptModelTest.BLOCKS * 6, q.layers().size(), what);
                    expect = logits(q.model(), prompt);
                    double max = 0, diff = 0;
                    for (int i = 0; i < expect.length; i++) {
                        max = Math.max(max, Math.abs(fpLogits[i]));
                        diff = Math.max(diff, Math.abs(expect[i] - fpLogits[i]));
                    }
                    assertTrue(diff > 0 && diff < 0.4 * max, what + ": max |DGQ - FP| / max |logit| = " + diff / max);
                    boolean folds = method == QuantMethod.DGQ_AUTHORS && preNorm;
                    assertEquals(folds ? 2 * OptModelTest.BLOCKS : 0, q.foldedNorms().size(), what + ": folded norms");
                    for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
                        assertTrue(e.getValue() instanceof DgqLinear, e.getKey() + " is " + e.getValue().getClass());
                        DgqLinear d = (DgqLinear) e.getValue();
                        boolean shared = !ModelCalibration.inputOf(e.getKey()).equals(e.getKey());
                        boolean explicit = method == QuantMethod.DGQ_AUTHORS && !(folds && shared);
                        assertEquals(explicit, d.inverseSmoothing() != null, what + " " + e.getKey() + ": explicit smoothing");
                        assertEquals(method == QuantMethod.DGQ ? ActivationMode.PER_TOKEN : ActivationMode.STATIC_PER_TENSOR,
                                d.activationMode());
                    }
                    for (QuantizationReport.Row r : q.report().rows()) {
                        assertEquals("DGQ", r.method(), r.layer());
                        assertEquals(128, r.group(), r.layer());
                        assertTrue(r.relativeError() >= 0 && r.relativeError() < 0.2, what + " " + r.layer() + ": " + r.relativeError());
                    }
                    before = q.layers();
                    QuantizedModelFile.save(q, file);
                    try (QuantizedModel loaded = QuantizedModelFile.load(file, load(dir), ctx)) {
                        assertEquals(method, loaded.method());
                        assertArrayEquals(expect, logits(loaded.model(), prompt), 0f, what + ": logits after reload");
                        assertEquals(q.report().toJson(), loaded.report().toJson(), what + ": report");
                        for (Map.Entry<String, LinearOp> e : loaded.layers().entrySet()) {
                            DgqLinear a = (DgqLinear) before.get(e.getKey());
                            DgqLinear b = (DgqLinear) e.getValue();
                            assertSameWeights(a, b, what + " " + e.getKey());
                        }
                        for (Map.Entry<String, float[]> n : q.foldedNorms().entrySet()) {
                            assertArrayEquals(n.getValue(), loaded.foldedNorms().get(n.getKey()), 0f, n.getKey());
                        }
                    }
                }
                JsonNode meta = metadata(Files.readAllBytes(file));
                assertEquals(QuantizedModelFile.VERSION_DGQ, meta.path("version").asInt(), what);
            }
        }
    }

    private static void assertSameWeights(DgqLinear a, DgqLinear b, String what) {
        DgqQuantizedWeights wa = a.weights(), wb = b.weights();
        assertEquals(a.inFeatures(), b.inFeatures(), what);
        assertEquals(wa.group(), wb.group(), what);
        assertEquals(wa.format(), wb.format(), what);
        assertArrayEquals(wa.packedCodes(), wb.packedCodes(), what + ": codes");
        assertArrayEquals(wa.groupScales(), wb.groupScales(), what + ": group scales");
        assertArrayEquals(wa.zeroPoints(), wb.zeroPoints(), what + ": zero points");
        assertArrayEquals(wa.channelScales(), wb.channelScales(), 0f, what + ": channel scales");
        assertArrayEquals(a.inverseSmoothing(), b.inverseSmoothing(), 0f, what + ": smoothing");
        assertArrayEquals(a.bias(), b.bias(), 0f, what + ": bias");
        assertEquals(Float.floatToIntBits(a.staticScale()), Float.floatToIntBits(b.staticScale()), what + ": static scale");
    }

    @Test
    void malformedDgqEntriesAreRefused() throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("bad"), 22, "model.decoder.", true, SafetensorsDType.F32);
        Path good = tmp.resolve("good.safetensors");
        try (QuantizedModel q = quantize(dir, QuantMethod.DGQ_AUTHORS)) {
            QuantizedModelFile.save(q, good);
        }
        byte[] bytes = Files.readAllBytes(good);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);

        // a version-1 file cannot hold DGQ layers
        assertRefused(edit(bytes, headerLength, header, "\\\"version\\\":2", "\\\"version\\\":1"), "kind 'dgq'");
        // unknown weight format, unknown activation mode
        assertRefused(edit(bytes, headerLength, header, "\\\"format\\\":\\\"ASYMMETRIC_UINT4", "\\\"format\\\":\\\"ASYMMETRIC_UINT5"), "weight format");
        assertRefused(edit(bytes, headerLength, header, "\\\"activationMode\\\":\\\"STATIC_PER_TENSOR", "\\\"activationMode\\\":\\\"STATIC_PER_TENSOX"), "activation mode");
        // a group size that does not match the stored tensors
        assertRefused(edit(bytes, headerLength, header, "\\\"group\\\":128,", "\\\"group\\\":8,  "), "must be U8");
        assertRefused(edit(bytes, headerLength, header, "\\\"group\\\":128,", "\\\"group\\\":0,  "), "group size");
        // an integer group scale of 0 (must be 1..255)
        byte[] zeroScale = bytes.clone();
        zeroScale[(int) (8 + headerLength + dataOffset(header, "blk.0.attn_q.dgq_gscale"))] = 0;
        assertRefused(zeroScale, "malformed");
        // a static-mode layer without its activation scale
        IOException e = assertThrows(IOException.class, () -> {
            Path f = tmp.resolve("nan.safetensors");
            Files.write(f, edit(bytes, headerLength, header, "\\\"activationScale\\\":", "\\\"activationScalf\\\":"));
            QuantizedModelFile.load(f, load(dir), ctx);
        });
        assertTrue(e.getMessage().contains("activationScale"), e.getMessage());
        // DGQ layers need a native context
        IllegalArgumentException noCtx = assertThrows(IllegalArgumentException.class, () -> QuantizedModelFile.load(good, load(dir), null));
        assertTrue(noCtx.getMessage().contains("native context"), noCtx.getMessage());
        // and the untouched file still loads
        try (QuantizedModel q = QuantizedModelFile.load(good, load(dir), ctx)) {
            assertEquals(QuantMethod.DGQ_AUTHORS, q.method());
        }
    }

    private void assertRefused(byte[] file, String message) throws IOException {
        Path f = tmp.resolve("edited.safetensors");
        Files.write(f, file);
        Path dir = tmp.resolve("bad");
        IOException e = assertThrows(IOException.class, () -> QuantizedModelFile.load(f, load(dir), ctx), message);
        assertTrue(e.getMessage().contains(message), "expected '" + message + "' in: " + e.getMessage());
    }

    private static byte[] edit(byte[] file, long headerLength, String header, String from, String to) {
        assertEquals(from.length(), to.length(), "test edit must keep the header length");
        assertTrue(header.contains(from), "header lacks " + from);
        byte[] h = header.replaceFirst(java.util.regex.Pattern.quote(from), java.util.regex.Matcher.quoteReplacement(to))
                .getBytes(StandardCharsets.UTF_8);
        assertEquals(headerLength, h.length);
        byte[] out = file.clone();
        System.arraycopy(h, 0, out, 8, h.length);
        return out;
    }

    private static long dataOffset(String header, String tensor) throws IOException {
        return JSON.readTree(header).path(tensor).path("data_offsets").get(0).asLong();
    }

    private static JsonNode metadata(byte[] file) throws IOException {
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        JsonNode h = JSON.readTree(new String(file, 8, (int) headerLength, StandardCharsets.UTF_8));
        return JSON.readTree(h.path("__metadata__").path("lowbit").asText());
    }

    @Test
    void filesWithoutDgqStayVersionOne() throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("v1"), 23, "model.decoder.", true, SafetensorsDType.F32);
        OptModel fp = load(dir);
        ModelCalibration cal = ModelCalibration.run(fp, tokens(48, 4), 24, CalibrationStats.Options.defaults().withSampleTokens(16), null);
        Path file = tmp.resolve("token.safetensors");
        try (QuantizedModel q = new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, null).quantize(load(dir), cal, QuantMethod.W8A8_TOKEN)) {
            QuantizedModelFile.save(q, file);
            for (QuantizationReport.Row r : q.report().rows()) {
                assertEquals("RTN", r.method());
                assertEquals(0, r.group());
            }
        }
        assertEquals(QuantizedModelFile.VERSION, metadata(Files.readAllBytes(file)).path("version").asInt());
        try (QuantizedModel q = QuantizedModelFile.load(file, load(dir), ctx)) {
            assertEquals("RTN", q.report().rows().get(0).method());
        }
    }

    @Test
    void dgqNeedsANativeContext() throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("noctx"), 24, "model.decoder.", true, SafetensorsDType.F32);
        OptModel fp = load(dir);
        ModelCalibration cal = ModelCalibration.run(fp, tokens(24, 5), 24, CalibrationStats.Options.defaults(), null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new ModelQuantizer(ModelQuantizer.defaultConfig(), null, null).quantize(load(dir), cal, QuantMethod.DGQ));
        assertTrue(e.getMessage().contains("native context"), e.getMessage());
        assertEquals(QuantMethod.DGQ_G64, QuantMethod.parse("dgq-g64"));
        assertEquals(64, QuantMethod.DGQ_G64.dgqConfig().group());
        assertEquals(QuantMethod.DGQ_G32, QuantMethod.parse("dgq-g32"));
        assertEquals(32, QuantMethod.DGQ_G32.dgqConfig().group());
        assertThrows(IllegalStateException.class, QuantMethod.W4A8_RTN::dgqConfig);
        assertThrows(IllegalArgumentException.class, () -> new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, null).withDgqGrids(0, 3));
    }
}
