package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.*;

import java.util.List;
import lowbit.quant.Precision;
import lowbit.quant.QuantizationReport;
import org.junit.jupiter.api.Test;

/** The report's method and group fields: JSON round trip, reports written before them, bad values. */
class ReportFieldsTest {
    private static QuantizationReport report() {
        return QuantizationReport.of("p", List.of(
                new QuantizationReport.Row("blk.0.attn_q", Precision.INT8, 576, 576, 576, Double.NaN, Double.NaN, 1.5e-3, 663552L, "DGQ", 128),
                new QuantizationReport.Row("blk.0.ffn_down", Precision.INT4, 1536, 1600, 576, 3.25, 0.5, 2e-2, 1843200L)));
    }

    @Test
    void methodAndGroupRoundTripThroughJson() {
        QuantizationReport r = report();
        String json = r.toJson();
        assertTrue(json.contains("\"method\" : \"DGQ\""), json);
        assertTrue(json.contains("\"group\" : 128"), json);
        assertTrue(json.contains("\"group\" : null"), json);
        QuantizationReport back = QuantizationReport.fromJson(json);
        assertEquals(r.rows(), back.rows(), "records compare double fields as Double.compare does: NaN equals NaN");
        assertEquals(json, back.toJson());
        assertEquals(QuantizationReport.UNIFORM, back.rows().get(1).method());
        assertEquals(0, back.rows().get(1).group());
        String table = r.toTable();
        assertTrue(table.contains("method") && table.contains(" DGQ ") && table.contains(" 128 "), table);
    }

    @Test
    void reportsWithoutTheFieldsReadAsPerChannel() {
        String old = "{\"policy\":\"old\",\"layers\":[{\"layer\":\"blk.0.attn_q\",\"precision\":\"INT8\",\"bits\":8,\"threshold\":null,"
                + "\"inFeatures\":576,\"expandedFeatures\":576,\"outFeatures\":576,\"expansionRatio\":1.0,\"alpha\":null,"
                + "\"relativeError\":0.001,\"flopsPerToken\":663552}],\"share\":{\"INT4\":0.0,\"INT8\":1.0,\"FP16\":0.0}}";
        QuantizationReport r = QuantizationReport.fromJson(old);
        assertEquals(QuantizationReport.UNIFORM, r.rows().get(0).method());
        assertEquals(0, r.rows().get(0).group());
        assertEquals(0.001, r.rows().get(0).relativeError());
    }

    @Test
    void badFieldsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new QuantizationReport.Row("l", Precision.INT8, 8, 8, 8, 0, 0, 0, 1, "DGQ", -1));
        assertThrows(IllegalArgumentException.class, () -> new QuantizationReport.Row("l", Precision.INT8, 8, 8, 8, 0, 0, 0, 1, " ", 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> QuantizationReport.fromJson(
                "{\"layers\":[{\"layer\":\"a\",\"precision\":\"INT8\",\"group\":\"x\"}]}"));
        assertTrue(e.getMessage().contains("group"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> QuantizationReport.fromJson(
                "{\"layers\":[{\"layer\":\"a\",\"precision\":\"INT3\"}]}"));
        assertTrue(e.getMessage().contains("precision"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> QuantizationReport.fromJson("not json"));
    }
}
