package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

class BadInputTest {

    private static void assertMessage(Class<? extends IllegalArgumentException> type, Executable call, String... words) {
        IllegalArgumentException e = assertThrows(type, call);
        for (String w : words) {
            assertTrue(e.getMessage().contains(w), "message '" + e.getMessage() + "' should mention '" + w + "'");
        }
    }

    @Test
    void emptyCalibration() {
        CalibrationStats stats = CalibrationStats.create("layers.3.fc1", 4);
        FlattenQuantizer q = new FlattenQuantizer(QuantConfig.defaults());
        assertMessage(IllegalArgumentException.class, () -> q.evaluate("layers.3.fc1", new float[8], null, 2, stats),
                "layers.3.fc1", "empty", "no tokens");
        assertMessage(IllegalArgumentException.class, () -> stats.tensorQuantile(0.5), "empty");
        CalibrationStats noSample = CalibrationStats.create("x", 2, CalibrationStats.Options.defaults().withSampleTokens(0));
        noSample.observe(new float[] {1, 2}, 1);
        assertMessage(IllegalArgumentException.class, () -> q.evaluate("x", new float[4], null, 2, noSample), "sample");
        assertMessage(IllegalArgumentException.class, () -> BitWidthPolicy.errorBudget(0.1).decide(List.of()), "at least one");
    }

    @Test
    void nonFiniteActivationsAndWeights() {
        CalibrationStats stats = CalibrationStats.create("attn.q", 3);
        assertMessage(NonFiniteValueException.class, () -> stats.observe(new float[] {1, 2, 3, 4, Float.NaN, 6}, 2),
                "attn.q", "NaN", "token 1", "channel 1");
        assertMessage(NonFiniteValueException.class,
                () -> stats.observe(new float[] {Float.POSITIVE_INFINITY, 0, 0}, 1), "Infinity", "token 0");
        assertTrue(stats.tokens() == 0, "rejected batches must not be absorbed");
        QuantizedLinear layer = QuantizedLinear.create(new float[] {1, 2, 3}, null, 1, 3, FlattenPlan.identity(3),
                Precision.INT8, true, QuantizedLinear.DYNAMIC);
        assertMessage(NonFiniteValueException.class, () -> layer.forward(new float[] {0, Float.NaN, 0}, 1, new float[1]),
                "NaN", "channel 1");
        assertMessage(NonFiniteValueException.class, () -> QuantizedLinear.create(new float[] {1, Float.NaN, 3}, null, 1, 3,
                FlattenPlan.identity(3), Precision.INT8, true, 1f), "weights", "NaN");
        stats.observe(new float[] {1, 2, 3}, 1);
        assertMessage(NonFiniteValueException.class, () -> new FlattenQuantizer(QuantConfig.defaults())
                .evaluate("attn.q", new float[] {1, 2, Float.NEGATIVE_INFINITY}, null, 1, stats), "attn.q", "weights");
    }

    @Test
    void mismatchedShapes() {
        CalibrationStats stats = CalibrationStats.create("mlp.up", 4);
        assertMessage(ShapeMismatchException.class, () -> stats.observe(new float[7], 2), "mlp.up", "2 tokens x 4", "got 7");
        stats.observe(new float[] {1, 2, 3, 4}, 1);
        assertMessage(ShapeMismatchException.class, () -> new FlattenQuantizer(QuantConfig.defaults())
                .evaluate("mlp.up", new float[9], null, 2, stats), "mlp.up", "weights", "got 9");
        assertMessage(ShapeMismatchException.class, () -> new FlattenQuantizer(QuantConfig.defaults())
                .evaluate("mlp.up", new float[8], new float[3], 2, stats), "bias");
        assertMessage(ShapeMismatchException.class, () -> stats.merge(CalibrationStats.create("mlp.down", 5)),
                "5 channels", "4 channels");
        assertMessage(ShapeMismatchException.class, () -> QuantizedLinear.create(new float[6], null, 2, 3,
                FlattenPlan.identity(4), Precision.INT4, true, 1f), "plan", "4", "3");
        QuantizedLinear layer = QuantizedLinear.create(new float[6], null, 2, 3, FlattenPlan.identity(3), Precision.INT4, true, 1f);
        assertMessage(ShapeMismatchException.class, () -> layer.forward(new float[5], 2, new float[4]), "2 tokens");
        assertMessage(ShapeMismatchException.class, () -> FlattenPlan.identity(3).flatten(new float[4], 1), "activations");
        assertMessage(ShapeMismatchException.class, () -> Smoothing.factors(new float[3], List.of(new float[7]), 0.5),
                "weight length 7", "3 input channels");
        assertMessage(ShapeMismatchException.class, () -> Smoothing.foldIntoNorm(new double[2], null,
                List.of(new double[3]), new double[] {1, 1, 1}), "norm");
    }

    @Test
    void badBudgetsAndParameters() {
        assertMessage(IllegalArgumentException.class, () -> QuantConfig.defaults().withExpansionBudget(0.9),
                "expansion budget", "0.9", ">= 1");
        assertMessage(IllegalArgumentException.class, () -> QuantConfig.defaults().withExpansionBudget(Double.NaN),
                "expansion budget");
        assertMessage(IllegalArgumentException.class, () -> FlattenQuantizer.smallestThreshold(new float[] {1}, 0.5),
                "expansion budget");
        assertMessage(IllegalArgumentException.class, () -> FlattenPlan.forThreshold(new float[] {1}, 0), "threshold");
        assertMessage(IllegalArgumentException.class, () -> FlattenPlan.ofCopies(new int[] {1, 0}), "channel 1", "copies");
        assertMessage(IllegalArgumentException.class, () -> Smoothing.factors(new float[1], List.of(new float[1]), 1.5), "alpha");
        assertMessage(IllegalArgumentException.class, () -> BitWidthPolicy.int4Share(1.2, 0.1), "share");
        assertMessage(IllegalArgumentException.class, () -> BitWidthPolicy.errorBudget(-1), "error budget");
        assertMessage(IllegalArgumentException.class, () -> SymmetricQuant.qmax(3), "4 or 8 bits");
        assertMessage(IllegalArgumentException.class, () -> FlattenPlan.fromJson("{not json"), "not valid JSON");
    }
}
