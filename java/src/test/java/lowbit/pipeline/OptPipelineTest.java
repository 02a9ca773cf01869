package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import lowbit.eval.Perplexity;
import lowbit.io.HfCheckpoint;
import lowbit.io.SafetensorsDType;
import lowbit.model.OptModel;
import lowbit.model.OptModelTest;
import lowbit.quant.CalibrationStats;
import lowbit.quant.QuantConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Calibration, quantization (baseline and FlattenQuant with LayerNorm folding) and perplexity on a tiny random OPT. */
class OptPipelineTest {
    @TempDir
    Path tmp;

    private static OptModel load(Path dir) throws IOException {
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            return OptModel.load(hf);
        }
    }

    private static int[] tokens(int n) {
        Random r = new Random(9);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = r.nextInt(OptModelTest.VOCAB);
        return t;
    }

    private static double relativeDifference(float[] a, float[] b) {
        double max = 0, diff = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i]));
            diff = Math.max(diff, Math.abs(a[i] - b[i]));
        }
        return diff / max;
    }

    private static float[] logits(lowbit.model.DecoderModel m, int[] t) {
        return m.logits(m.forwardHidden(m.newKvCache(t.length), t), t.length);
    }

    @Test
    void foldingSmoothingIntoALayerNormKeepsTheFunction() throws IOException {
        OptModel m = load(OptModelTest.writeTinyOpt(tmp.resolve("fold"), 5, "model.decoder.", true, SafetensorsDType.F32));
        int[] t = tokens(20);
        float[] before = logits(m, t);
        double[] s = new double[OptModelTest.DIM];
        Random r = new Random(2);
        for (int i = 0; i < s.length; i++) s[i] = 0.25 + 4 * r.nextDouble();
        float[] oldBias = m.normBias("blk.1.ffn_norm");
        ModelQuantizer.foldIntoNorm(m, "blk.1.ffn_norm", List.of("blk.1.ffn_up"), s);
        assertNotEquals(oldBias[0], m.normBias("blk.1.ffn_norm")[0]);
        assertTrue(relativeDifference(before, logits(m, t)) < 1e-5);
    }

    @Test
    void baselineAndFlattenQuantRunOnOpt() throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("q"), 6, "model.decoder.", true, SafetensorsDType.F32);
        int[] calib = tokens(96);
        int[] eval = tokens(48);
        OptModel fp = load(dir);
        float[] reference = logits(fp, java.util.Arrays.copyOf(eval, 24));
        double fpPpl = Perplexity.evaluate(fp, eval, 24, null).perplexity();
        ModelCalibration cal = ModelCalibration.run(fp, calib, 24, CalibrationStats.Options.defaults().withSampleTokens(32), null);
        QuantConfig config = QuantConfig.defaults().withThresholdCandidates(2).withSmoothingAlphas(0.5);
        for (QuantMethod method : List.of(QuantMethod.W8A8_TOKEN, QuantMethod.W8A8_FLATTEN)) {
            OptModel m = load(dir);
            try (QuantizedModel q = new ModelQuantizer(config, null, null).quantize(m, cal, method)) {
                assertEquals(OptModelTest.BLOCKS * 6, q.layers().size(), method.id());
                double diff = relativeDifference(reference, logits(m, java.util.Arrays.copyOf(eval, 24)));
                assertTrue(diff > 0 && diff < 0.05, method + ": max |quantized - FP| / max |logit| = " + diff);
                double ppl = Perplexity.evaluate(m, eval, 24, null).perplexity();
                assertEquals(fpPpl, ppl, 0.05 * fpPpl, method.id());
                if (method == QuantMethod.W8A8_FLATTEN) assertEquals(2 * OptModelTest.BLOCKS, q.foldedAlphas().size());
            }
        }
    }

    @Test
    void flattenQuantRefusesPostNormOpt() throws IOException {
        OptModel m = load(OptModelTest.writeTinyOpt(tmp.resolve("post"), 7, "decoder.", false, SafetensorsDType.F32));
        ModelCalibration cal = ModelCalibration.run(m, tokens(24), 24, CalibrationStats.Options.defaults(), null);
        String message = assertThrows(IllegalArgumentException.class,
                () -> new ModelQuantizer(ModelQuantizer.defaultConfig(), null, null).quantize(m, cal, QuantMethod.W8A8_FLATTEN)).getMessage();
        assertTrue(message.contains("pre-norm"), message);
    }
}
