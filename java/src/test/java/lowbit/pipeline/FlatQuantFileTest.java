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
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Param;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.flatquant.BlockTransforms;
import lowbit.flatquant.FlatQuantKvCodec;
import lowbit.flatquant.FlatQuantLinear;
import lowbit.flatquant.QuantScheme;
import lowbit.model.DecoderModel;
import lowbit.model.KvCache;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
import lowbit.model.LlamaModel;
import lowbit.quant.Precision;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * FlatQuant models in the quantized model file, on a tiny random LLaMA ({@link TinyLlama}): the
 * inference part of {@link FlatQuantQuantizer} ({@link FlatQuantQuantizer#build}) on calibration
 * parameters moved away from their start (as a calibration leaves them), saved as version 3 and
 * loaded onto a fresh FP model without calibration: prefill and decode logits bit for bit, the same
 * weights, transforms (stored once per shared input), clips, folded norms, KV codec and report; the
 * report names every layer's transform sizes and has finite errors; malformed and truncated files
 * and files of other versions are refused with clear exceptions.
 */
class FlatQuantFileTest {
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

    /**
     * FlatQuant parameters for every block as a calibration result: the start values moved by seeded
     * noise, clip logits around {@code clipLogit} (2: factors near 0.88; 14: no clipping).
     */
    static Map<String, double[]> params(LlamaModel fp, QuantScheme scheme, long seed, double clipLogit) {
        LlamaConfig c = fp.config();
        Random rnd = new Random(seed);
        Map<String, double[]> params = new LinkedHashMap<>();
        RotaryEmbedding rope = RotaryEmbedding.of(c, null);
        for (int b = 0; b < c.blockCount(); b++) {
            BlockTransforms t = new BlockTransforms("blk." + b + ".", LlamaBlock.fromModel(fp, b, rope), null, scheme,
                    BlockTransforms.DEFAULT_ALPHA, BlockwiseCalibration.blockSeed(FlatQuantQuantizer.SEED, b));
            for (Param p : t.params()) {
                double[] v = p.values();
                for (int i = 0; i < v.length; i++) {
                    if (p.name().endsWith("sigma") || p.name().endsWith("scale")) v[i] = 0.6 + 0.8 * rnd.nextDouble();
                    else if (p.name().endsWith("clip")) v[i] = clipLogit + 0.5 * rnd.nextGaussian();
                    else v[i] += 0.2 * rnd.nextGaussian();
                }
                params.put(p.name(), v);
            }
        }
        return params;
    }

    /** The tiny model of {@code dir} quantized by {@code method} with {@link #params}. */
    static QuantizedModel quantize(Path dir, QuantMethod method) throws IOException {
        return quantize(dir, method, 2);
    }

    static QuantizedModel quantize(Path dir, QuantMethod method, double clipLogit) throws IOException {
        LlamaModel blocks = TinyLlama.load(dir);
        LlamaConfig c = blocks.config();
        QuantScheme scheme = method.flatQuantScheme(c.headDim());
        RotaryEmbedding rope = RotaryEmbedding.of(c, null);
        return FlatQuantQuantizer.build(ctx, TinyLlama.load(dir), c, b -> LlamaBlock.fromModel(blocks, b, rope), method, scheme, java.util.Set.of(),
                params(blocks, scheme, 99, clipLogit), TinyLlama.tokens(24, 1), method.description() + "; test parameters", 1234);
    }

    /** Logits of every prompt position, then of one decode step. */
    static float[][] run(DecoderModel m, int[] prompt, int next) {
        KvCache cache = m.newKvCache(prompt.length + 1);
        float[] prefill = m.logits(m.forwardHidden(cache, prompt), prompt.length);
        return new float[][] {prefill, m.forward(cache, new int[] {next})};
    }

    private static void assertBitIdentical(float[][] want, float[][] got, String what) {
        for (int p = 0; p < want.length; p++) {
            assertEquals(want[p].length, got[p].length, what);
            for (int i = 0; i < want[p].length; i++) {
                assertEquals(Float.floatToIntBits(want[p][i]), Float.floatToIntBits(got[p][i]), what + ": pass " + p + ", logit " + i);
            }
        }
    }

    @Test
    void flatQuantModelsRoundTripBitForBit() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 5);
        int[] prompt = TinyLlama.tokens(13, 7);
        float[][] fp = run(TinyLlama.load(dir), prompt, 17);
        for (QuantMethod method : new QuantMethod[] {QuantMethod.FLATQUANT_W4A4_KV4, QuantMethod.FLATQUANT_W8A8, QuantMethod.FLATQUANT_W4A8}) {
            String what = method.id();
            Path file = tmp.resolve(method.id() + ".safetensors");
            float[][] expect;
            try (QuantizedModel q = quantize(dir, method)) {
                expect = run(q.model(), prompt, 17);
                double diff = 0, max = 0;
                for (int i = 0; i < fp[0].length; i++) {
                    diff = Math.max(diff, Math.abs(expect[0][i] - fp[0][i]));
                    max = Math.max(max, Math.abs(fp[0][i]));
                }
                assertTrue(diff > 0 && diff < 0.5 * max, what + ": max |quantized - FP| / max |logit| = " + diff / max);
                assertEquals(method.id().endsWith("kv4"), q.kvCodec() != null, what + ": KV codec");
                checkReport(q, what);
                QuantizedModelFile.save(q, file);
                try (QuantizedModel loaded = QuantizedModelFile.load(file, TinyLlama.load(dir), ctx)) {
                    assertEquals(method, loaded.method());
                    assertEquals(1234, loaded.calibrationTokens());
                    assertBitIdentical(expect, run(loaded.model(), prompt, 17), what + " after reload");
                    assertEquals(q.report().toJson(), loaded.report().toJson(), what + ": report");
                    assertEquals(q.layers().keySet(), loaded.layers().keySet());
                    for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
                        assertSameLayer((FlatQuantLinear) e.getValue(), (FlatQuantLinear) loaded.layers().get(e.getKey()), what + " " + e.getKey());
                    }
                    // the three readers of one input share one transform after loading, as before
                    for (String p : new String[] {"blk.0.", "blk.1."}) {
                        assertSame(((FlatQuantLinear) loaded.layers().get(p + "attn_q")).transform(), ((FlatQuantLinear) loaded.layers().get(p + "attn_v")).transform());
                        assertSame(((FlatQuantLinear) loaded.layers().get(p + "ffn_gate")).transform(), ((FlatQuantLinear) loaded.layers().get(p + "ffn_up")).transform());
                    }
                    assertEquals(q.foldedNorms().keySet(), loaded.foldedNorms().keySet());
                    for (Map.Entry<String, float[]> n : q.foldedNorms().entrySet()) {
                        assertArrayEquals(n.getValue(), loaded.foldedNorms().get(n.getKey()), 0f, n.getKey());
                    }
                    if (q.kvCodec() != null) assertSameCodec((FlatQuantKvCodec) q.kvCodec(), (FlatQuantKvCodec) loaded.kvCodec());
                    else assertNull(loaded.kvCodec());
                }
            }
            JsonNode meta = metadata(Files.readAllBytes(file));
            assertEquals(QuantizedModelFile.VERSION_FLATQUANT, meta.path("version").asInt(), what);
            assertEquals(4 * TinyLlama.CONFIG.blockCount(), meta.path("transforms").size(), what + ": one transform per block input");
        }
    }

    /**
     * A mixed-precision FlatQuant model (W4A4KV4, block 1 kept at W8A8): block 1's layers hold 8-bit
     * weights and quantize their inputs to 8 bits, block 0's stay at 4, the KV codec covers both
     * blocks, block 1's layers are closer to FP than at 4 bits, and the file round-trips bit for bit.
     */
    @Test
    void blocksKeptAtW8a8RoundTripBitForBit() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 11);
        int[] prompt = TinyLlama.tokens(13, 5);
        QuantMethod method = QuantMethod.FLATQUANT_W4A4_KV4;
        LlamaModel blocks = TinyLlama.load(dir);
        LlamaConfig c = blocks.config();
        QuantScheme scheme = method.flatQuantScheme(c.headDim());
        RotaryEmbedding rope = RotaryEmbedding.of(c, null);
        Path file = tmp.resolve("mixed.safetensors");
        try (QuantizedModel all4 = quantize(dir, method);
                QuantizedModel mixed = FlatQuantQuantizer.build(ctx, TinyLlama.load(dir), c, b -> LlamaBlock.fromModel(blocks, b, rope), method, scheme,
                        java.util.Set.of(1), params(blocks, scheme, 99, 2), TinyLlama.tokens(24, 1), "mixed; test parameters", 1234)) {
            for (Map.Entry<String, LinearOp> e : mixed.layers().entrySet()) {
                FlatQuantLinear op = (FlatQuantLinear) e.getValue();
                int want = e.getKey().startsWith("blk.1.") ? 8 : 4;
                assertEquals(want, op.weights().bits(), e.getKey() + " weights");
                assertEquals(want, op.activations().bits(), e.getKey() + " activations");
            }
            for (QuantizationReport.Row r : mixed.report().rows()) {
                assertEquals(r.layer().startsWith("blk.1.") ? Precision.INT8 : Precision.INT4, r.precision(), r.layer());
                if (r.layer().startsWith("blk.1.")) {
                    QuantizationReport.Row at4 = all4.report().rows().stream().filter(x -> x.layer().equals(r.layer())).findFirst().orElseThrow();
                    assertTrue(r.relativeError() < at4.relativeError(), r.layer() + ": W8A8 error " + r.relativeError() + " vs W4A4 " + at4.relativeError());
                }
            }
            assertNotNull(mixed.kvCodec());
            float[][] expect = run(mixed.model(), prompt, 17);
            QuantizedModelFile.save(mixed, file);
            try (QuantizedModel loaded = QuantizedModelFile.load(file, TinyLlama.load(dir), ctx)) {
                assertBitIdentical(expect, run(loaded.model(), prompt, 17), "mixed after reload");
                assertEquals(mixed.report().toJson(), loaded.report().toJson());
            }
        }
    }

    /** Every FlatQuant row names the scheme and its transform's factor sizes and has a finite, plausible output error. */
    private static void checkReport(QuantizedModel q, String what) {
        assertEquals(q.layers().size(), q.report().rows().size(), what);
        String scheme = q.method().flatQuantScheme(12).name();
        for (QuantizationReport.Row r : q.report().rows()) {
            String l = r.layer().substring(r.layer().lastIndexOf('.') + 1);
            String sizes = switch (l) {
                case "attn_output" -> "P 4x12 (P2=I)";
                case "ffn_down" -> "P 8x10";
                default -> "P 6x8";
            };
            assertEquals("FlatQuant " + scheme + " " + sizes, r.method(), what + " " + r.layer());
            double bound = scheme.startsWith("W8A8") ? 0.03 : 0.3;
            assertTrue(r.relativeError() > 0 && r.relativeError() < bound, what + " " + r.layer() + ": relative error " + r.relativeError());
        }
        String table = q.table();
        assertTrue(table.contains("P 6x8") && table.contains("P 8x10") && table.contains("P 4x12 (P2=I)"), table);
    }

    /**
     * The report's error is measured in the right coordinates: without clipping, W8A8 layers are
     * within 1e-3 of the FP layers (a wrong fold mapping of an input or output, e.g. forgetting Pv on
     * attn_v or the down scale on ffn_up, gives errors of order 0.1 or more).
     */
    @Test
    void unclippedW8a8ReportErrorsAreSmall() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 8);
        try (QuantizedModel q = quantize(dir, QuantMethod.FLATQUANT_W8A8, 14)) {
            for (QuantizationReport.Row r : q.report().rows()) {
                assertTrue(r.relativeError() > 0 && r.relativeError() < 1e-3, r.layer() + ": relative error " + r.relativeError());
            }
        }
    }

    /**
     * The KV4 model's caches hold packed 4-bit codes; the same model with the simulated (float) cache
     * gives the same logits bit for bit over a prefill and several decode steps, in an eighth of the
     * code bytes.
     */
    @Test
    void packedKv4CacheEqualsTheSimulatedCache() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 9);
        int[] prompt = TinyLlama.tokens(19, 3);
        try (QuantizedModel q = quantize(dir, QuantMethod.FLATQUANT_W4A4_KV4)) {
            FlatQuantKvCodec packed = (FlatQuantKvCodec) q.kvCodec();
            assertTrue(packed.isPacked());
            DecoderModel simulated = new KvCodecModel(((KvCodecModel) q.model()).inner(), packed.withPacked(false));
            KvCache a = q.model().newKvCache(prompt.length + 4), b = simulated.newKvCache(prompt.length + 4);
            assertTrue(a.isPacked());
            assertFalse(b.isPacked());
            float[][] got = new float[5][], want = new float[5][];
            got[0] = q.model().forward(a, prompt);
            want[0] = simulated.forward(b, prompt);
            for (int s = 1; s < 5; s++) {
                got[s] = q.model().forward(a, new int[] {(7 * s) % 50});
                want[s] = simulated.forward(b, new int[] {(7 * s) % 50});
            }
            assertBitIdentical(want, got, "packed vs simulated KV4");
            int kvDim = TinyLlama.CONFIG.kvHeadCount() * TinyLlama.CONFIG.headDim(); // 24, one group of 12 per head
            assertEquals((12 + 16 * 2) / (4.0 * kvDim), (double) a.bytes() / b.bytes(), 1e-12);
        }
    }

    private static void assertSameLayer(FlatQuantLinear a, FlatQuantLinear b, String what) {
        assertEquals(a.weights().bits(), b.weights().bits(), what);
        assertArrayEquals(a.weights().codes(), b.weights().codes(), what + ": codes");
        assertArrayEquals(a.weights().scales(), b.weights().scales(), 0f, what + ": scales");
        assertArrayEquals(a.bias(), b.bias(), 0f, what + ": bias");
        assertEquals(a.activations().bits(), b.activations().bits(), what);
        assertEquals(Float.floatToIntBits(a.activations().clipHi()), Float.floatToIntBits(b.activations().clipHi()), what + ": clip");
        assertEquals(Float.floatToIntBits(a.activations().clipLo()), Float.floatToIntBits(b.activations().clipLo()), what + ": clip");
        assertEquals(a.transform(), b.transform(), what + ": transform");
        assertEquals(a.usesFusedTransform(), b.usesFusedTransform(), what);
    }

    private static void assertSameCodec(FlatQuantKvCodec a, FlatQuantKvCodec b) {
        assertEquals(a.spec(), b.spec());
        assertEquals(a.heads(), b.heads());
        assertEquals(a.kvHeads(), b.kvHeads());
        assertEquals(a.headDim(), b.headDim());
        assertEquals(a.layers().size(), b.layers().size());
        for (int i = 0; i < a.layers().size(); i++) {
            FlatQuantKvCodec.Layer x = a.layers().get(i), y = b.layers().get(i);
            assertArrayEquals(x.pk(), y.pk(), 0f);
            assertArrayEquals(x.pkInverseTranspose(), y.pkInverseTranspose(), 0f);
            assertArrayEquals(x.keyClip(), y.keyClip(), 0);
            assertArrayEquals(x.valueClip(), y.valueClip(), 0);
        }
    }

    @Test
    void malformedFlatQuantFilesAreRefused() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 6);
        Path good = tmp.resolve("good.safetensors");
        try (QuantizedModel q = quantize(dir, QuantMethod.FLATQUANT_W4A4_KV4)) {
            QuantizedModelFile.save(q, good);
        }
        byte[] bytes = Files.readAllBytes(good);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);

        // older versions cannot hold FlatQuant; an unknown version is named
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"version\\\":3", "\\\"version\\\":2"), "version 2 files cannot hold");
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"version\\\":3", "\\\"version\\\":9"), "version 9");
        // a layer naming a transform the file lacks; a tensor of the wrong size; clips out of range; bad factor size
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"transform\\\":\\\"blk.1.attn_q\\\"", "\\\"transform\\\":\\\"blk.1.attn_x\\\""),
                "does not hold");
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"weightBits\\\":4", "\\\"weightBits\\\":8"), "must be U8");
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"activationClip\\\":[0.", "\\\"activationClip\\\":[9."), "malformed");
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"n1\\\":6", "\\\"n1\\\":0"), "n1");
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"n1\\\":6", "\\\"n1\\\":3"), "must be F32");
        // the KV codec: clips out of range, another head size, a missing tensor
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"keyClip\\\":[0.", "\\\"keyClip\\\":[7."), "KV codec is malformed");
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"headDim\\\":12", "\\\"headDim\\\":24"), "KV codec is for");
        assertRefused(dir, edit(bytes, headerLength, header, "\\\"kind\\\":\\\"flatquant\\\",\\\"bits", "\\\"kind\\\":\\\"flatquanx\\\",\\\"bits"), "unknown kind");
        // a weight scale that is not positive
        byte[] zeroScale = bytes.clone();
        int at = (int) (8 + headerLength + JSON.readTree(header).path("blk.0.ffn_up.fq_wscale").path("data_offsets").get(0).asLong());
        java.util.Arrays.fill(zeroScale, at, at + 4, (byte) 0);
        assertRefused(dir, zeroScale, "weight scale 0");
        // truncated
        Path truncated = tmp.resolve("truncated.safetensors");
        Files.write(truncated, java.util.Arrays.copyOf(bytes, bytes.length - 64));
        assertThrows(IOException.class, () -> QuantizedModelFile.load(truncated, TinyLlama.load(dir), ctx));
        // FlatQuant layers need a native context
        IllegalArgumentException noCtx = assertThrows(IllegalArgumentException.class, () -> QuantizedModelFile.load(good, TinyLlama.load(dir), null));
        assertTrue(noCtx.getMessage().contains("native context"), noCtx.getMessage());
        // and the untouched file still loads
        try (QuantizedModel q = QuantizedModelFile.load(good, TinyLlama.load(dir), ctx)) {
            assertEquals(QuantMethod.FLATQUANT_W4A4_KV4, q.method());
        }
    }

    private void assertRefused(Path dir, byte[] file, String message) throws IOException {
        Path f = tmp.resolve("edited.safetensors");
        Files.write(f, file);
        IOException e = assertThrows(IOException.class, () -> QuantizedModelFile.load(f, TinyLlama.load(dir), ctx), message);
        assertTrue(e.getMessage().contains(message), "expected '" + message + "' in: " + e.getMessage());
    }

    /** The file with the first {@code from} of its header replaced by {@code to} (same length; the ABQ file test uses it too). */
    static byte[] edit(byte[] file, long headerLength, String header, String from, String to) {
        assertEquals(from.length(), to.length(), "test edit must keep the header length");
        assertTrue(header.contains(from), "header lacks " + from);
        byte[] h = header.replaceFirst(java.util.regex.Pattern.quote(from), java.util.regex.Matcher.quoteReplacement(to))
                .getBytes(StandardCharsets.UTF_8);
        assertEquals(headerLength, h.length);
        byte[] out = file.clone();
        System.arraycopy(h, 0, out, 8, h.length);
        return out;
    }

    /** The lowbit JSON document of a model file's metadata. */
    static JsonNode metadata(byte[] file) throws IOException {
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        JsonNode h = JSON.readTree(new String(file, 8, (int) headerLength, StandardCharsets.UTF_8));
        return JSON.readTree(h.path("__metadata__").path("lowbit").asText());
    }
}
