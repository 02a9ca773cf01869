package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import lowbit.model.LinearOp;
import lowbit.quant.CalibrationStats;
import lowbit.quant.FlattenPlan;
import lowbit.quant.QuantConfig;
import lowbit.quant.QuantizedLinear;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * FlattenQuant layers in the quantized model file, on a tiny random LLaMA ({@link TinyLlama}), in
 * both orders of the expanded channels ({@link FlattenPlan.Order}): a file written now (plans
 * {@code "appended"}, version 2 plan JSON) loads with the same plans and the same logits bit for
 * bit; and a file as the builds before the order wrote it (version 1 plan JSON, copies adjacent in
 * the plans and in the stored weights) still loads as ADJACENT with the same logits bit for bit.
 */
class FlattenOrderFileTest {
    @TempDir
    Path tmp;

    @Test
    void appendedFilesAndVersionOneAdjacentFilesLoadBitForBit() throws IOException {
        Path dir = TinyLlama.write(tmp.resolve("model"), 21);
        ModelCalibration cal = ModelCalibration.run(TinyLlama.load(dir), TinyLlama.tokens(96, 2), 24,
                CalibrationStats.Options.defaults().withSampleTokens(32), null);
        QuantConfig config = QuantConfig.defaults().withThresholdCandidates(3).withSmoothingAlphas(0.5);
        int[] prompt = TinyLlama.tokens(7, 3);
        Path appendedFile = tmp.resolve("appended.safetensors");
        Path adjacentFile = tmp.resolve("adjacent.safetensors");
        float[][] want;
        Map<String, FlattenPlan> plans = new LinkedHashMap<>();
        try (QuantizedModel q = new ModelQuantizer(config, null, null).quantize(TinyLlama.load(dir), cal, QuantMethod.W8A8_FLATTEN)) {
            want = FlatQuantFileTest.run(q.model(), prompt, 5);
            int split = 0;
            for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
                FlattenPlan p = ((QuantizedLinear) e.getValue()).plan();
                assertEquals(FlattenPlan.Order.APPENDED, p.order(), e.getKey());
                plans.put(e.getKey(), p);
                if (p.expandedFeatures() - p.padding() > p.inFeatures()) split++;
            }
            assertTrue(split > 0, "the test needs layers with split channels");
            QuantizedModelFile.save(q, appendedFile);

            // the same layers with the old layout: plans ADJACENT, weight columns permuted to match
            Map<String, LinearOp> twins = new LinkedHashMap<>();
            for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
                twins.put(e.getKey(), adjacentTwin((QuantizedLinear) e.getValue()));
            }
            try (QuantizedModel old = QuantizedModel.install(TinyLlama.load(dir), q.method(), q.description(), q.report(), twins,
                    q.foldedNorms(), q.foldedAlphas(), q.calibrationTokens())) {
                assertBitIdentical(want, FlatQuantFileTest.run(old.model(), prompt, 5), "adjacent twin in memory");
                QuantizedModelFile.save(old, adjacentFile);
            }
        }

        String header = header(Files.readAllBytes(appendedFile));
        assertTrue(header.contains("\\\"order\\\":\\\"appended\\\""), "plans are written with their order");
        try (QuantizedModel loaded = QuantizedModelFile.load(appendedFile, TinyLlama.load(dir), null)) {
            for (Map.Entry<String, FlattenPlan> e : plans.entrySet()) {
                assertEquals(e.getValue(), ((QuantizedLinear) loaded.layers().get(e.getKey())).plan(), e.getKey());
            }
            assertBitIdentical(want, FlatQuantFileTest.run(loaded.model(), prompt, 5), "appended file");
        }

        // Rewrite the adjacent file's plans as version 1 (no "order"), as the old writer did; the
        // header keeps its length (inner JSON whitespace), so the tensor offsets stay valid.
        byte[] bytes = Files.readAllBytes(adjacentFile);
        String adjacentHeader = header(bytes);
        String v2 = "\\\"version\\\":2,\\\"order\\\":\\\"adjacent\\\"";
        String v1 = "\\\"version\\\":1";
        int count = adjacentHeader.split(java.util.regex.Pattern.quote(v2), -1).length - 1;
        assertEquals(plans.size(), count, "one plan per quantized layer");
        String oldHeader = adjacentHeader.replace(v2, v1 + " ".repeat(v2.length() - v1.length()));
        assertFalse(oldHeader.contains("order"));
        Path versionOne = tmp.resolve("version1.safetensors");
        Files.write(versionOne, withHeader(bytes, oldHeader));
        try (QuantizedModel loaded = QuantizedModelFile.load(versionOne, TinyLlama.load(dir), null)) {
            for (Map.Entry<String, FlattenPlan> e : plans.entrySet()) {
                FlattenPlan p = ((QuantizedLinear) loaded.layers().get(e.getKey())).plan();
                assertEquals(FlattenPlan.Order.ADJACENT, p.order(), e.getKey());
                assertEquals(e.getValue().withOrder(FlattenPlan.Order.ADJACENT), p, e.getKey());
            }
            assertBitIdentical(want, FlatQuantFileTest.run(loaded.model(), prompt, 5), "version-1 adjacent file");
        }
    }

    /**
     * {@code layer} (INT8 weights, APPENDED plan) with its plan in ADJACENT order and its packed
     * weight columns moved to match: the c-th copy of channel j in one order is the c-th in the other.
     */
    private static QuantizedLinear adjacentTwin(QuantizedLinear layer) {
        assertEquals(8, layer.weightBits(), "the twin moves whole bytes: INT8 weights only");
        FlattenPlan appended = layer.plan();
        FlattenPlan adjacent = appended.withOrder(FlattenPlan.Order.ADJACENT);
        int k = appended.inFeatures();
        int kp = appended.expandedFeatures();
        int real = kp - appended.padding();
        List<List<Integer>> positions = new ArrayList<>();
        for (int j = 0; j < k; j++) positions.add(new ArrayList<>());
        int[] srcA = appended.sourceChannels();
        for (int c = 0; c < real; c++) positions.get(srcA[c]).add(c);
        int[] srcD = adjacent.sourceChannels();
        int[] taken = new int[k];
        int[] from = new int[kp];
        for (int c = 0; c < kp; c++) {
            from[c] = c < real ? positions.get(srcD[c]).get(taken[srcD[c]]++) : c;
        }
        int n = layer.outFeatures();
        int ld = layer.weightLd();
        byte[] packed = layer.packedWeights();
        byte[] moved = packed.clone();
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < kp; c++) moved[r * ld + c] = packed[r * ld + from[c]];
        }
        return QuantizedLinear.fromParts(adjacent, n, 8, ld, moved, layer.weightScales(), layer.activationBits(),
                layer.activationMode(), layer.activationScale(), layer.bias());
    }

    private static void assertBitIdentical(float[][] want, float[][] got, String what) {
        for (int p = 0; p < want.length; p++) {
            assertEquals(want[p].length, got[p].length, what);
            for (int i = 0; i < want[p].length; i++) {
                assertTrue(Float.isFinite(want[p][i]), what + ": pass " + p + ", logit " + i);
                assertEquals(Float.floatToIntBits(want[p][i]), Float.floatToIntBits(got[p][i]), what + ": pass " + p + ", logit " + i);
            }
        }
    }

    private static String header(byte[] file) {
        long length = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return new String(file, 8, (int) length, StandardCharsets.UTF_8);
    }

    /** The file with its header replaced by {@code header} of the same length. */
    private static byte[] withHeader(byte[] file, String header) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        assertEquals(header(file).getBytes(StandardCharsets.UTF_8).length, h.length, "the edit must keep the header length");
        byte[] out = file.clone();
        System.arraycopy(h, 0, out, 8, h.length);
        return out;
    }
}
