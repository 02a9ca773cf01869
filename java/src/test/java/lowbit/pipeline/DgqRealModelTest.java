package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import lowbit.Backend;
import lowbit.Context;
import lowbit.dgq.DgqLinear;
import lowbit.io.RealModelFixture;
import lowbit.model.LinearOp;
import lowbit.model.LlamaModel;
import lowbit.quant.CalibrationStats;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DGQ A8W4 through the pipeline on the real SmolLM2-135M (skipped, visibly, when the model cannot
 * be fetched), sized for a 2-core machine: 48 calibration tokens with 16 sampled per input, reduced
 * grids (4 + 8 candidates) on weight MSE, a 12-token prompt. K = 576 is not a multiple of G = 128: those rows end
 * in a partial group of 64 columns.
 */
class DgqRealModelTest {
    private static final int[] PROMPT = {504, 3458, 282, 4195, 314, 253, 1345, 28, 359, 357, 1485, 30};
    private static Context ctx;
    private static ModelCalibration calibration;
    private static float[] fpLogits;

    @BeforeAll
    static void calibrate() throws IOException {
        ctx = Context.open(Backend.CPU);
        LlamaModel model = load();
        fpLogits = logits(model);
        int[] tokens = new int[48];
        for (int i = 0; i < tokens.length; i++) tokens[i] = PROMPT[i % PROMPT.length] + i;
        calibration = ModelCalibration.run(model, tokens, 24, CalibrationStats.Options.defaults().withSampleTokens(16), null);
    }

    @AfterAll
    static void close() {
        if (ctx != null) ctx.close();
    }

    private static LlamaModel load() throws IOException {
        return LlamaModel.load(RealModelFixture.gguf());
    }

    private static float[] logits(lowbit.model.DecoderModel m) {
        return m.forward(m.newKvCache(PROMPT.length), PROMPT);
    }

    private static QuantizedModel quantize(QuantMethod method) throws IOException {
        // weight-MSE objective (0 search tokens): with 16 sampled tokens of this synthetic calibration text
        // the output-error objective overfits (rank-16 error, grids pick heavy clipping); the
        // output-error path is covered by lowbit.dgq's tests and the perplexity runs
        return new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, null).withDgqSearch(4, 8, 0).quantize(load(), calibration, method);
    }

    /** {@code ||got − fp|| / ||fp||} over all logits of the prompt. */
    private static double relativeRms(float[] got) {
        double num = 0, den = 0;
        for (int i = 0; i < got.length; i++) {
            double d = got[i] - fpLogits[i];
            num += d * d;
            den += (double) fpLogits[i] * fpLogits[i];
        }
        return Math.sqrt(num / den);
    }

    @Test
    void defaultDgqQuantizesEveryBlockLinearWithGroupsOf128() throws IOException {
        try (QuantizedModel q = quantize(QuantMethod.DGQ)) {
            assertEquals(210, q.layers().size());
            assertTrue(q.foldedNorms().isEmpty(), "the default variant does not smooth");
            for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
                DgqLinear d = (DgqLinear) e.getValue();
                assertEquals(128, d.weights().group(), e.getKey());
                int k = d.inFeatures();
                assertEquals((k + 127) / 128 * 128, d.weights().cols(), e.getKey() + ": padded K");
                assertNull(d.inverseSmoothing(), e.getKey());
            }
            for (QuantizationReport.Row r : q.report().rows()) {
                assertEquals("DGQ", r.method());
                assertEquals(128, r.group());
                assertTrue(r.relativeError() > 0 && r.relativeError() < 0.1, r.layer() + ": relative error " + r.relativeError());
            }
            assertTrue(q.table().contains(" DGQ "), q.table());
            float[] got = logits(q.model());
            // on these 12 prompt positions, with this tiny synthetic calibration and 4 + 8 weight-MSE
            // grids, DGQ's logit error was 0.47 against W4A8 RTN's 0.27 and top-1 agreed at 3 of 12
            // positions (on the 4,094-token perplexity slice DGQ is far better than RTN:
            // bench/RESULTS.md), so only finiteness and a bound are asserted on the logits
            for (float v : got) assertTrue(Float.isFinite(v));
            double err = relativeRms(got);
            assertTrue(err > 0 && err < 0.75, "logit error of DGQ " + err);
        }
    }

    @Test
    void authorsVariantFoldsSmoothingAndRoundTripsBitForBit(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("dgq-authors.safetensors");
        float[] expect;
        try (QuantizedModel q = quantize(QuantMethod.DGQ_AUTHORS)) {
            assertEquals(60, q.foldedNorms().size(), "attn_norm and ffn_norm of 30 blocks");
            for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
                boolean explicit = e.getKey().endsWith("attn_output") || e.getKey().endsWith("ffn_down");
                assertEquals(explicit, ((DgqLinear) e.getValue()).inverseSmoothing() != null, e.getKey());
            }
            expect = logits(q.model());
            // static per-tensor INT8 activations cost much on this model (see bench/RESULTS.md), so the
            // logits are only checked to be finite and related; each layer's error on the calibration
            // sample (against the folded FP layer on x/s, or the FP layer with explicit 1/s) is bounded
            for (float v : expect) assertTrue(Float.isFinite(v));
            double err = relativeRms(expect);
            assertTrue(err > 0 && err < 2.0, "logit error of the authors' variant " + err);
            for (QuantizationReport.Row r : q.report().rows()) {
                assertEquals("DGQ", r.method());
                assertTrue(r.relativeError() > 0 && r.relativeError() < 0.25, r.layer() + ": relative error " + r.relativeError());
            }
            QuantizedModelFile.save(q, file);
        }
        try (QuantizedModel loaded = QuantizedModelFile.load(file, load(), ctx)) {
            assertEquals(QuantMethod.DGQ_AUTHORS, loaded.method());
            assertEquals(210, loaded.report().rows().size());
            assertArrayEquals(expect, logits(loaded.model()), 0f, "logits after reload");
        }
    }
}
