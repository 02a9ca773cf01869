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
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.abq.AbqLinear;
import lowbit.abq.ActivationQuantizer;
import lowbit.abq.IntCodes;
import lowbit.abq.TransformedAbqLinear;
import lowbit.abq.WeightQuantizer;
import lowbit.flatquant.OnlineTransform;
import lowbit.model.DecoderModel;
import lowbit.model.FloatLinear;
import lowbit.model.KvCache;
import lowbit.model.LinearOp;
import lowbit.quant.Precision;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ABQ-LLM models in the quantized model file (version 4), on a tiny random LLaMA ({@link TinyLlama}):
 * block 0 holds {@link AbqLinear} layers at a different width per layer (W2A8 with zero points, the
 * bit-balanced W2*A8 on three signed planes, W6A6 symmetric, W4A4, W3A8, W8A8, W1A8; one with a
 * bias), block 1 {@link TransformedAbqLinear} layers behind Kronecker transforms shared by the
 * layers that read one input, with learned clips. Saved and loaded onto a fresh FP model: the same
 * codes, scales, zero points, widths, clips and shared transforms, and prefill and decode logits
 * bit for bit; the planes take {@code planes / 8} bytes per weight. Malformed files (older
 * versions, widths out of range, a scale that is not positive, a zero point out of range, missing
 * tensors, a transform the file lacks, no native context) are refused with messages naming the
 * problem, and {@link IntCodes#fromPlanes} refuses bits past the last column.
 */
class AbqFileTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] LINEARS = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
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

    /** Block 0: plain bit-plane layers, one width each; block 1: the same behind shared transforms. */
    static QuantizedModel quantize(Path dir) throws IOException {
        DecoderModel model = TinyLlama.load(dir);
        Random rnd = new Random(3);
        Object[][] widths = {
            {new WeightQuantizer(2, true, false, 0), ActivationQuantizer.asymmetric(8)},   // W2A8
            {WeightQuantizer.bitBalanced(2), ActivationQuantizer.asymmetric(8)},           // W2*A8: 3 signed planes
            {new WeightQuantizer(6, false, false, 0), ActivationQuantizer.symmetric(6)},   // W6A6 symmetric
            {new WeightQuantizer(4, true, false, 0), ActivationQuantizer.asymmetric(4)},   // W4A4
            {new WeightQuantizer(3, true, false, 0), ActivationQuantizer.asymmetric(8)},   // W3A8
            {new WeightQuantizer(8, false, false, 0), ActivationQuantizer.symmetric(8)},   // W8A8
            {new WeightQuantizer(1, true, false, 0), ActivationQuantizer.asymmetric(8)},   // W1A8
        };
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        List<QuantizationReport.Row> rows = new ArrayList<>();
        Map<Integer, OnlineTransform> transforms = new LinkedHashMap<>();
        for (int b = 0; b < 2; b++) {
            for (int i = 0; i < LINEARS.length; i++) {
                String name = "blk." + b + "." + LINEARS[i];
                FloatLinear fp = (FloatLinear) model.linear(name);
                int n = fp.outFeatures(), k = fp.inFeatures();
                Object[] w = widths[(i + 3 * b) % widths.length];
                float[] bias = i == 1 ? gaussian(rnd, n, 0.05) : null;
                AbqLinear layer = AbqLinear.create(ctx, fp.weight(), bias, n, k, (WeightQuantizer) w[0], (ActivationQuantizer) w[1]);
                if (b == 0) {
                    layers.put(name, layer);
                } else {
                    // q/k/v share the attention input's transform, gate/up the FFN input's
                    int input = i <= 2 ? 0 : i >= 4 && i <= 5 ? 4 : i;
                    OnlineTransform t = transforms.computeIfAbsent(input, key -> transform(rnd, k));
                    layers.put(name, TransformedAbqLinear.of(t, 0.9 + 0.01 * i, 0.8 + 0.01 * i, layer));
                }
                rows.add(new QuantizationReport.Row(name, Precision.INT8, k, k, n, Double.NaN, Double.NaN, Double.NaN, 2L * n * k,
                        "ABQ " + w[0] + " " + w[1], 0));
            }
        }
        String description = "ABQ test widths";
        return QuantizedModel.install(model, QuantMethod.ABQ_AUTO, description, QuantizationReport.of(description, rows), layers,
                Map.of("blk.0.attn_norm", positive(rnd, TinyLlama.CONFIG.dim())), Map.of(), 4321);
    }

    /** A Kronecker transform for rows of k = n1 x n2 values: identity plus noise in both factors. */
    private static OnlineTransform transform(Random rnd, int k) {
        int n1 = k == 48 ? 6 : k == 80 ? 8 : 1, n2 = k / n1;
        return OnlineTransform.ofFloats(nearIdentity(rnd, n1), n1, nearIdentity(rnd, n2), n2);
    }

    private static float[] nearIdentity(Random rnd, int n) {
        float[] p = new float[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) p[i * n + j] = (i == j ? 1f : 0f) + (float) (0.1 * rnd.nextGaussian());
        }
        return p;
    }

    private static float[] gaussian(Random rnd, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (std * rnd.nextGaussian());
        return v;
    }

    private static float[] positive(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (0.5 + rnd.nextDouble());
        return v;
    }

    /** Logits of every prompt position, then of one decode step. */
    private static float[][] run(DecoderModel m, int[] prompt, int next) {
        KvCache cache = m.newKvCache(prompt.length + 1);
        float[] prefill = m.logits(m.forwardHidden(cache, prompt), prompt.length);
        return new float[][] {prefill, m.forward(cache, new int[] {next})};
    }

    @Test
    void abqModelsRoundTripBitForBit() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 5);
        int[] prompt = TinyLlama.tokens(13, 7);
        float[][] fp = run(TinyLlama.load(dir), prompt, 17);
        Path file = tmp.resolve("abq.safetensors");
        float[][] expect;
        try (QuantizedModel q = quantize(dir)) {
            expect = run(q.model(), prompt, 17);
            double diff = 0, max = 0;
            for (int i = 0; i < fp[0].length; i++) {
                diff = Math.max(diff, Math.abs(expect[0][i] - fp[0][i]));
                max = Math.max(max, Math.abs(fp[0][i]));
            }
            assertTrue(diff > 0 && Float.isFinite((float) diff), "the ABQ model differs from FP, finitely: " + diff + " of " + max);
            QuantizedModelFile.save(q, file);
            try (QuantizedModel loaded = QuantizedModelFile.load(file, TinyLlama.load(dir), ctx)) {
                assertEquals(QuantMethod.ABQ_AUTO, loaded.method());
                assertEquals(4321, loaded.calibrationTokens());
                assertEquals(q.report().toJson(), loaded.report().toJson());
                assertArrayEquals(q.foldedNorms().get("blk.0.attn_norm"), loaded.foldedNorms().get("blk.0.attn_norm"), 0f);
                assertEquals(q.layers().keySet(), loaded.layers().keySet());
                for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
                    LinearOp a = e.getValue(), b = loaded.layers().get(e.getKey());
                    if (a instanceof TransformedAbqLinear ta) {
                        TransformedAbqLinear tb = assertInstanceOf(TransformedAbqLinear.class, b, e.getKey());
                        assertEquals(Float.floatToIntBits(ta.clipHi()), Float.floatToIntBits(tb.clipHi()), e.getKey() + ": clip");
                        assertEquals(Float.floatToIntBits(ta.clipLo()), Float.floatToIntBits(tb.clipLo()), e.getKey() + ": clip");
                        assertEquals(ta.transform(), tb.transform(), e.getKey() + ": transform");
                        assertSameLayer(ta.layer(), tb.layer(), e.getKey());
                    } else {
                        assertSameLayer((AbqLinear) a, assertInstanceOf(AbqLinear.class, b, e.getKey()), e.getKey());
                    }
                }
                // the readers of one input share one transform after loading, as before
                assertSame(((TransformedAbqLinear) loaded.layers().get("blk.1.attn_q")).transform(),
                        ((TransformedAbqLinear) loaded.layers().get("blk.1.attn_v")).transform());
                assertSame(((TransformedAbqLinear) loaded.layers().get("blk.1.ffn_gate")).transform(),
                        ((TransformedAbqLinear) loaded.layers().get("blk.1.ffn_up")).transform());
                float[][] got = run(loaded.model(), prompt, 17);
                for (int p = 0; p < expect.length; p++) {
                    for (int i = 0; i < expect[p].length; i++) {
                        assertEquals(Float.floatToIntBits(expect[p][i]), Float.floatToIntBits(got[p][i]), "pass " + p + ", logit " + i);
                    }
                }
            }
        }
        byte[] bytes = Files.readAllBytes(file);
        JsonNode meta = FlatQuantFileTest.metadata(bytes);
        assertEquals(QuantizedModelFile.VERSION_ABQ, meta.path("version").asInt());
        assertEquals(4, meta.path("transforms").size(), "one transform per distinct input of block 1");
        JsonNode header = header(bytes);
        // W2A8 on attn_q of block 0 (48 x 48): two planes of 6 bytes per row, zero points as I32
        JsonNode planes = header.path("blk.0.attn_q.abq_planes");
        assertEquals("U8", planes.path("dtype").asText());
        assertEquals("[48,2,6]", planes.path("shape").toString());
        assertEquals("I32", header.path("blk.0.attn_q.abq_wzero").path("dtype").asText());
        // the bit-balanced W2* layer: three signed planes, no zero points
        assertEquals("[24,3,6]", header.path("blk.0.attn_k.abq_planes").path("shape").toString());
        assertTrue(header.path("blk.0.attn_k.abq_wzero").isMissingNode());
        for (JsonNode l : meta.path("layers")) {
            assertEquals(l.path("name").asText().startsWith("blk.0.") ? "abq" : "abq-flat", l.path("kind").asText());
        }
    }

    private static void assertSameLayer(AbqLinear a, AbqLinear b, String what) {
        IntCodes x = a.weights(), y = b.weights();
        assertEquals(x.planes(), y.planes(), what + ": planes");
        assertEquals(x.isSigned(), y.isSigned(), what + ": signed");
        assertArrayEquals(x.codes(), y.codes(), what + ": codes");
        assertArrayEquals(x.scales(), y.scales(), 0f, what + ": scales");
        assertArrayEquals(x.zeroPoints(), y.zeroPoints(), what + ": zero points");
        assertArrayEquals(a.bias(), b.bias(), 0f, what + ": bias");
        assertEquals(a.activations().bits(), b.activations().bits(), what + ": activation bits");
        assertEquals(a.activations().isAsymmetric(), b.activations().isAsymmetric(), what + ": activation symmetry");
    }

    @Test
    void malformedAbqFilesAreRefused() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("tiny"), 6);
        Path good = tmp.resolve("good.safetensors");
        try (QuantizedModel q = quantize(dir)) {
            QuantizedModelFile.save(q, good);
        }
        byte[] bytes = Files.readAllBytes(good);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);

        // older versions cannot hold ABQ layers; widths out of range; a transform the file lacks; a missing tensor
        assertRefused(dir, FlatQuantFileTest.edit(bytes, headerLength, header, "\\\"version\\\":4", "\\\"version\\\":3"), "version 3 files cannot hold");
        assertRefused(dir, FlatQuantFileTest.edit(bytes, headerLength, header, "\\\"weightPlanes\\\":2", "\\\"weightPlanes\\\":9"), "weightPlanes = 9");
        assertRefused(dir, FlatQuantFileTest.edit(bytes, headerLength, header, "\\\"weightPlanes\\\":2", "\\\"weightPlanes\\\":4"), "must be U8");
        assertRefused(dir, FlatQuantFileTest.edit(bytes, headerLength, header, "\\\"activationBits\\\":8", "\\\"activationBits\\\":9"), "malformed");
        assertRefused(dir, FlatQuantFileTest.edit(bytes, headerLength, header, "\\\"transform\\\":\\\"blk.1.attn_q\\\"", "\\\"transform\\\":\\\"blk.1.attn_x\\\""),
                "does not hold");
        assertRefused(dir, FlatQuantFileTest.edit(bytes, headerLength, header, "\\\"activationClip\\\":[0.9", "\\\"activationClip\\\":[7.9"), "malformed");
        // a weight scale that is not positive, a zero point out of range
        JsonNode h = JSON.readTree(header);
        byte[] zeroScale = bytes.clone();
        int at = (int) (8 + headerLength + h.path("blk.0.ffn_up.abq_wscale").path("data_offsets").get(0).asLong());
        java.util.Arrays.fill(zeroScale, at, at + 4, (byte) 0);
        assertRefused(dir, zeroScale, "has scale 0.0");
        byte[] farZero = bytes.clone();
        at = (int) (8 + headerLength + h.path("blk.0.attn_q.abq_wzero").path("data_offsets").get(0).asLong());
        ByteBuffer.wrap(farZero, at, 4).order(ByteOrder.LITTLE_ENDIAN).putInt(1 << 20);
        assertRefused(dir, farZero, "zero point 1048576");
        // truncated
        Path truncated = tmp.resolve("truncated.safetensors");
        Files.write(truncated, java.util.Arrays.copyOf(bytes, bytes.length - 64));
        assertThrows(IOException.class, () -> QuantizedModelFile.load(truncated, TinyLlama.load(dir), ctx));
        // ABQ layers run on a native context
        IllegalArgumentException noCtx = assertThrows(IllegalArgumentException.class, () -> QuantizedModelFile.load(good, TinyLlama.load(dir), null));
        assertTrue(noCtx.getMessage().contains("native context"), noCtx.getMessage());
        // and the untouched file still loads
        try (QuantizedModel q = QuantizedModelFile.load(good, TinyLlama.load(dir), ctx)) {
            assertEquals(QuantMethod.ABQ_AUTO, q.method());
        }
    }

    /** Bit planes of odd widths round-trip for every plane count and signedness; bits past the last column and bad scales are refused. */
    @Test
    void bitPlanesRoundTripAndRefuseGarbage() {
        Random rnd = new Random(17);
        for (int planes = 1; planes <= 8; planes++) {
            for (boolean signed : new boolean[] {false, true}) {
                if (signed && planes < 2) continue;  // a signed grid needs a sign and a magnitude bit
                int rows = 3, cols = 13;
                float[] w = gaussian(rnd, rows * cols, 1.0);
                WeightQuantizer wq = new WeightQuantizer(planes, !signed, false, 0);
                IntCodes c = wq.quantize(w, rows, cols);
                byte[] packed = c.packedPlanes();
                assertEquals(rows * c.planes() * 2, packed.length);
                IntCodes back = IntCodes.fromPlanes(rows, cols, c.planes(), c.isSigned(), packed, c.scales(), c.zeroPoints());
                assertArrayEquals(c.codes(), back.codes(), planes + (signed ? " signed" : " unsigned"));
                assertArrayEquals(c.dequantize(), back.dequantize(), 0f);
                // a bit past column 13 of the last byte of row 1, plane 0
                byte[] bad = packed.clone();
                bad[(1 * c.planes()) * 2 + 1] |= (byte) 0x80;
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> IntCodes.fromPlanes(rows, cols, c.planes(), c.isSigned(), bad, c.scales(), c.zeroPoints()));
                assertTrue(e.getMessage().contains("row 1, plane 0 has bits set past column 13"), e.getMessage());
            }
        }
        IntCodes c = new WeightQuantizer(4, true, false, 0).quantize(gaussian(rnd, 26, 1.0), 2, 13);
        float[] nan = c.scales();
        nan[1] = Float.NaN;
        assertThrows(IllegalArgumentException.class, () -> IntCodes.fromPlanes(2, 13, 4, false, c.packedPlanes(), nan, c.zeroPoints()));
        assertThrows(IllegalArgumentException.class, () -> IntCodes.fromPlanes(2, 13, 4, false, new byte[3], c.scales(), c.zeroPoints()));
        assertThrows(IllegalArgumentException.class, () -> IntCodes.fromPlanes(2, 13, 0, false, new byte[0], c.scales(), null));
    }

    private void assertRefused(Path dir, byte[] file, String message) throws IOException {
        Path f = tmp.resolve("edited.safetensors");
        Files.write(f, file);
        IOException e = assertThrows(IOException.class, () -> QuantizedModelFile.load(f, TinyLlama.load(dir), ctx), message);
        assertTrue(e.getMessage().contains(message), "expected '" + message + "' in: " + e.getMessage());
    }

    private static JsonNode header(byte[] file) throws IOException {
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return JSON.readTree(new String(file, 8, (int) headerLength, StandardCharsets.UTF_8));
    }
}
