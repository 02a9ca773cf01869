package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import lowbit.model.LinearOp;
import org.junit.jupiter.api.Test;

class FlattenQuantizerTest {

    @Test
    void smallestThresholdIsTightAgainstTheBudget() {
        SplittableRandom r = new SplittableRandom(9);
        float[] m = new float[101];
        for (int j = 0; j < m.length; j++) {
            m[j] = (float) Math.exp(2 * r.nextGaussian());
        }
        for (double budget : new double[] {1.0, 1.1, 1.25, 2.0, 7.5}) {
            double t = FlattenQuantizer.smallestThreshold(m, budget);
            long limit = (long) Math.floor(budget * m.length);
            assertTrue(FlattenPlan.expandedCount(m, t) <= limit);
            assertTrue(FlattenPlan.expandedCount(m, t * (1 - 1e-6)) > limit, "threshold not minimal at budget " + budget);
        }
    }

    @Test
    void searchRespectsBudgetAndBuildsWhatItMeasured() {
        SyntheticActivations source = new SyntheticActivations(97, 3, 4);
        float[] w = SyntheticActivations.weights(23, 97, 5);
        float[] bias = new float[23];
        bias[3] = 1.5f;
        CalibrationStats stats = CalibrationStats.create("fc", 97, CalibrationStats.Options.defaults().withSampleTokens(64));
        stats.observe(source.tokens(200, 6), 200);
        QuantConfig config = QuantConfig.defaults().withExpansionBudget(1.2).withPadMultiple(8).withThresholdCandidates(6);
        LayerEvaluation eval = new FlattenQuantizer(config).evaluate("fc", w, bias, 23, stats);
        for (Precision p : new Precision[] {Precision.INT4, Precision.INT8}) {
            PrecisionSetting s = eval.setting(p);
            FlattenPlan plan = s.plan();
            assertTrue(plan.expandedFeatures() - plan.padding() <= Math.floor(1.2 * 97), plan.toString());
            assertEquals(0, plan.expandedFeatures() % 8);
            // the built layer reproduces the measured calibration error (bias removed)
            LinearOp layer = eval.build(p);
            float[] x = stats.sample();
            int tokens = stats.sampleSize();
            float[] y = new float[tokens * 23];
            layer.forward(x, tokens, y);
            for (int t = 0; t < tokens; t++) {
                y[t * 23 + 3] -= 1.5f;
            }
            double err = FlattenQuantizer.relativeError(y, FlattenQuantizer.referenceProduct(x, tokens, w, 23, 97));
            assertEquals(s.relativeError(), err, 1e-6 * s.relativeError() + 1e-12);
        }
        assertTrue(eval.setting(Precision.INT4).relativeError() > eval.setting(Precision.INT8).relativeError());
        assertEquals(0.0, eval.setting(Precision.FP16).relativeError());
        assertEquals(97, eval.setting(Precision.FP16).expandedFeatures());
    }
}
