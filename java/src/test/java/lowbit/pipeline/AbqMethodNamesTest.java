package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Locale;
import lowbit.abq.AbqConfig;
import lowbit.calibrate.DistributionCorrection;
import org.junit.jupiter.api.Test;

/** The fixed-width ABQ method names map to the intended widths, grids and switches; the other pipelines refuse them clearly. */
class AbqMethodNamesTest {
    @Test
    void namesMapToConfigs() {
        int abq = 0;
        for (QuantMethod m : QuantMethod.values()) {
            if (!m.isAbq() || m == QuantMethod.ABQ_AUTO) { // abq-auto: a width per layer, no single config
                assertThrows(IllegalStateException.class, m::abqConfig);
                continue;
            }
            abq++;
            AbqConfig c = m.abqConfig();
            assertEquals(m.id().contains("w2*"), c.bitBalance(), m.id());
            assertEquals(m.abqCalibrates(), c.learns(), m.id());
            assertEquals(m.abqCalibrates() && !m.id().endsWith("-nodc"), c.loss().equals(DistributionCorrection.all()), m.id());
            assertTrue(m.id().startsWith("abq-" + c.widths().toLowerCase(Locale.ROOT)), m.id() + " vs " + c.widths());
            assertFalse(c.symmetric());
        }
        assertEquals(12, abq);
        assertEquals(QuantMethod.ABQ_W2STAR_A8, QuantMethod.parse("ABQ-W2*A8"));
        AbqConfig w6 = QuantMethod.parse("abq-w6a6").abqConfig();
        assertEquals(6, w6.weightBits());
        assertEquals(6, w6.activationBits());
        assertTrue(w6.lwc() && w6.let() && w6.compensation());
        AbqConfig w2 = QuantMethod.parse("abq-w2a8-rtn").abqConfig();
        assertEquals(2, w2.weightBits());
        assertEquals(8, w2.activationBits());
        assertFalse(w2.bitBalance());
    }

    @Test
    void budgetAndPipelinesRefuseClearly() {
        assertThrows(IllegalArgumentException.class, () -> new CalibrationBudget(4, 128, 2, 8));
        assertThrows(IllegalArgumentException.class, () -> new CalibrationBudget(0, 128, 2, 1));
        assertThrows(IllegalArgumentException.class, () -> new AbqQuantizer(null, CalibrationBudget.reduced(), null, null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new ModelQuantizer(ModelQuantizer.defaultConfig(), null, null).quantize(null, null, QuantMethod.ABQ_W4A4));
        assertTrue(e.getMessage().contains("AbqQuantizer"), e.getMessage());
    }
}
