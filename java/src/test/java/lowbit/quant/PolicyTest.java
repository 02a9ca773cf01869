package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class PolicyTest {

    /** A ranked-only layer: errors and expanded widths as given. */
    static LayerEvaluation layer(String name, int k, int n, double e4, int k4, double e8, int k8) {
        Map<Precision, PrecisionSetting> s = new EnumMap<>(Precision.class);
        s.put(Precision.INT4, new PrecisionSetting(Precision.INT4, 0.5, 1.0, plan(k, k4), e4, new float[] {1}));
        s.put(Precision.INT8, new PrecisionSetting(Precision.INT8, Double.NaN, 2.0, plan(k, k8), e8, new float[] {1}));
        s.put(Precision.FP16, new PrecisionSetting(Precision.FP16, Double.NaN, Double.NaN, FlattenPlan.identity(k), 0, new float[] {1}));
        return new LayerEvaluation(name, k, n, s, null, null, null, null);
    }

    private static FlattenPlan plan(int k, int kp) {
        int[] copies = new int[k];
        java.util.Arrays.fill(copies, 1);
        copies[0] += kp - k;
        return FlattenPlan.ofCopies(copies);
    }

    private static List<LayerEvaluation> randomLayers(long seed, int count) {
        SplittableRandom r = new SplittableRandom(seed);
        List<LayerEvaluation> layers = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int k = 16 + r.nextInt(200);
            int n = 8 + r.nextInt(300);
            double e8 = Math.exp(-9 + 4 * r.nextDouble());
            double e4 = e8 * Math.exp(2 + 3 * r.nextDouble());
            layers.add(layer("l" + i, k, n, e4, k + r.nextInt(k / 4 + 1), e8, k + r.nextInt(k / 8 + 1)));
        }
        return layers;
    }

    @Test
    void tighterBudgetNeverLowersAnyLayersBits() {
        double[] budgets = {1, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 0};
        for (long seed = 1; seed <= 5; seed++) {
            List<LayerEvaluation> layers = randomLayers(seed, 40);
            for (double target : new double[] {Double.NaN, 0.0, 0.48, 0.9, 1.0}) {
                QuantizationReport previous = null;
                for (double b : budgets) {
                    BitWidthPolicy policy = Double.isNaN(target) ? BitWidthPolicy.errorBudget(b) : BitWidthPolicy.int4Share(target, b);
                    QuantizationReport report = policy.decide(layers);
                    if (previous != null) {
                        for (int i = 0; i < layers.size(); i++) {
                            int before = previous.rows().get(i).precision().bits();
                            int now = report.rows().get(i).precision().bits();
                            assertTrue(now >= before, "budget " + b + " target " + target + ": layer " + i + " went from "
                                    + before + " to " + now + " bits");
                        }
                    }
                    for (QuantizationReport.Row row : report.rows()) {
                        assertTrue(row.relativeError() <= b, "layer over budget: " + row);
                    }
                    previous = report;
                }
            }
        }
    }

    @Test
    void int4ShareIsFlopWeightedWithExpandedK() {
        List<LayerEvaluation> layers = List.of(
                layer("a", 100, 10, 0.01, 125, 0.001, 100),  // INT4: 2*10*125 = 2500
                layer("b", 200, 30, 0.5, 210, 0.002, 200),   // INT8: 2*30*200 = 12000
                layer("c", 50, 40, 0.02, 60, 0.001, 50),     // INT4: 2*40*60 = 4800
                layer("d", 80, 5, 0.9, 80, 0.8, 80));        // FP16: 2*5*80 = 800
        QuantizationReport report = BitWidthPolicy.errorBudget(0.1).decide(layers);
        assertEquals(Precision.INT4, report.precisionOf("a"));
        assertEquals(Precision.INT8, report.precisionOf("b"));
        assertEquals(Precision.INT4, report.precisionOf("c"));
        assertEquals(Precision.FP16, report.precisionOf("d"));
        double total = 2500 + 12000 + 4800 + 800;
        assertEquals(7300 / total, report.share(Precision.INT4), 1e-15);
        assertEquals(12000 / total, report.share(Precision.INT8), 1e-15);
        assertEquals(800 / total, report.share(Precision.FP16), 1e-15);
        assertEquals(125, report.rows().get(0).expandedFeatures());
    }

    @Test
    void paperConfigurationPutsTheMostSensitiveLayersAtEightBits() throws Exception {
        List<LayerEvaluation> layers = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            // equal compute; INT4 error grows with i, so l0..l4 are the least sensitive
            layers.add(layer("l" + i, 64, 64, 0.01 * (i + 1), 64, 1e-4, 64));
        }
        QuantizationReport report = BitWidthPolicy.flattenQuantPaper().decide(layers);
        for (int i = 0; i < 10; i++) {
            assertEquals(i < 5 ? Precision.INT4 : Precision.INT8, report.precisionOf("l" + i), "l" + i);
        }
        assertEquals(0.5, report.share(Precision.INT4), 1e-15);
        String table = report.toTable();
        assertTrue(table.contains("INT4 50.00%") && table.contains("l9") && table.contains("K'/K"), table);
        JsonNode json = new ObjectMapper().readTree(report.toJson());
        assertEquals(10, json.path("layers").size());
        assertEquals("INT8", json.path("layers").get(9).path("precision").asText());
        assertEquals(0.5, json.path("share").path("INT4").asDouble(), 1e-15);
        assertEquals(64, json.path("layers").get(0).path("expandedFeatures").asInt());
    }
}
