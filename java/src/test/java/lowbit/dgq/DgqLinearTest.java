package lowbit.dgq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import lowbit.Backend;
import lowbit.Context;
import lowbit.model.FloatLinear;
import lowbit.quant.CalibrationStats;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** DgqLinear on the native CPU backend against its Java simulation, and its accuracy bounds. */
class DgqLinearTest {
    @ParameterizedTest(name = "{0} {1} G={2} N={3}")
    @CsvSource({"SYMMETRIC_INT4, PER_TOKEN, 32, 37", "ASYMMETRIC_UINT4, PER_TOKEN, 64, 37",
            "SYMMETRIC_INT4, STATIC_PER_TENSOR, 64, 21", "ASYMMETRIC_UINT4, STATIC_PER_TENSOR, 32, 21"})
    void nativeForwardEqualsJavaSimulationBitForBit(WeightFormat format, ActivationMode mode, int group, int n) {
        int k = 128;
        SyntheticLayer layer = SyntheticLayer.create(1, n, k);
        float[] calib = layer.activations(2, 64, 3, 30);
        CalibrationStats stats = layer.calibrate(calib, 64, 32);
        DgqConfig cfg = DgqConfig.defaults().withGroup(group).withFormat(format).withActivations(mode).withSearch(6, 16, 32)
                .withSmoothing(group == 64 ? 0.995 : Double.NaN, 1);  // percentile smoothing in two of the four cases
        float[] x = layer.activations(3, 9, 3, 30);
        try (Context ctx = Context.open(Backend.CPU);
             DgqLinear q = DgqLinear.create(ctx, layer.weight(), layer.bias(), n, k, stats, cfg)) {
            float[] y = new float[9 * n];
            q.forward(x, 9, y);
            assertArrayEquals(q.simulate(x, 9), y, 0f, "native DGQ forward vs Java simulation");
            // M = 1 (decode)
            float[] y1 = new float[n];
            q.forward(java.util.Arrays.copyOf(x, k), 1, y1);
            assertArrayEquals(q.simulate(java.util.Arrays.copyOf(x, k), 1), y1, 0f);
            double rel = DgqLayerReport.relativeError(new FloatLinear(layer.weight(), layer.bias(), n, k), layer.bias(), q, x, 9);
            assertTrue(rel < 0.02, format + " " + mode + ": relative output error " + rel + " >= 0.02");
            DgqLayerReport r = DgqLayerReport.measure("l", new FloatLinear(layer.weight(), layer.bias(), n, k), layer.bias(), q, x, 9);
            assertEquals(rel, r.relativeError(), 0.0);
            QuantizationReport.Row row = r.toRow();
            assertEquals("l", row.layer());
            assertEquals("DGQ", row.method());
            assertEquals(group, row.group());
            assertEquals(2L * n * k, row.flopsPerToken());
        }
    }

    @Test
    void dgqBeatsPerChannelRtnOnOutlierActivations() {
        // Same smoothing-free setting for both: the weight grid is the only difference.
        int n = 48, k = 256;
        SyntheticLayer layer = SyntheticLayer.create(7, n, k);
        float[] calib = layer.activations(8, 128, 4, 20);
        CalibrationStats stats = layer.calibrate(calib, 128, 64);
        float[] x = layer.activations(9, 32, 4, 20);
        FloatLinear fp = new FloatLinear(layer.weight(), layer.bias(), n, k);
        DgqConfig cfg = DgqConfig.defaults().withGroup(64).withSmoothing(Double.NaN, 1).withSearch(10, 40, 64);
        // RTN per channel, symmetric INT4 (lowbit's grid), same per-token INT8 activations.
        float[] rtn = new float[n * k];
        for (int j = 0; j < n; j++) {
            float amax = 0;
            for (int c = 0; c < k; c++) amax = Math.max(amax, Math.abs(layer.weight()[j * k + c]));
            float s = amax / 7;
            for (int c = 0; c < k; c++) rtn[j * k + c] = (float) Math.max(-7, Math.min(7, Math.rint(layer.weight()[j * k + c] / s))) * s;
        }
        double rtnErr = DgqLayerReport.relativeError(fp, layer.bias(), new FloatLinear(rtn, layer.bias(), n, k), x, 32);
        try (Context ctx = Context.open(Backend.CPU)) {
            for (WeightFormat f : WeightFormat.values()) {
                try (DgqLinear q = DgqLinear.create(ctx, layer.weight(), layer.bias(), n, k, stats, cfg.withFormat(f))) {
                    double err = DgqLayerReport.relativeError(fp, layer.bias(), q, x, 32);
                    assertTrue(err < 0.75 * rtnErr, f + ": DGQ error " + err + " is not below 0.75 x RTN (W4 only) " + rtnErr);
                }
            }
        }
    }

    @Test
    void badInput() {
        SyntheticLayer layer = SyntheticLayer.create(1, 4, 96);
        CalibrationStats stats = layer.calibrate(layer.activations(1, 8, 0, 1), 8, 8);
        try (Context ctx = Context.open(Backend.CPU)) {
            // G = 64 does not divide K = 96: the last group is partial (stored and run as 128 columns, zero-padded)
            try (DgqLinear partial = DgqLinear.create(ctx, layer.weight(), null, 4, 96, stats,
                    DgqConfig.defaults().withGroup(64).withSearch(20, 80, 8))) {
                assertEquals(96, partial.inFeatures());
                assertEquals(128, partial.weights().cols());
                for (int j = 0; j < 4; j++) {
                    for (int c = 96; c < 128; c++) assertEquals(0, partial.weights().w8(j, c), "padding column " + c);
                }
                float[] x = layer.activations(2, 3, 0, 1);
                float[] y = new float[3 * 4];
                partial.forward(x, 3, y);
                assertArrayEquals(partial.simulate(x, 3), y, 0f);
                double rel = DgqLayerReport.relativeError(new FloatLinear(layer.weight(), null, 4, 96), null, partial, x, 3);
                assertTrue(rel < 0.05, "partial-group relative error " + rel);
            }
            IllegalArgumentException e;
            CalibrationStats other = CalibrationStats.create("other", 95);
            e = assertThrows(IllegalArgumentException.class,
                    () -> DgqLinear.create(ctx, layer.weight(), null, 4, 96, other, DgqConfig.defaults().withGroup(32)));
            assertTrue(e.getMessage().contains("95 channels"), e.getMessage());
            try (DgqLinear q = DgqLinear.create(ctx, layer.weight(), null, 4, 96, stats, DgqConfig.defaults().withGroup(32).withSearch(2, 2, 8))) {
                assertThrows(IllegalArgumentException.class, () -> q.forward(new float[95], 1, new float[4]));
            }
        }
        assertThrows(IllegalArgumentException.class, () -> DgqConfig.defaults().withSmoothing(1.5, 1));
    }
}
