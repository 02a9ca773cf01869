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
            if (!m.isAbq() || m == QuantMethod.ABQ_AUTO || m.isAbqFlat()) { // abq-auto: a width per layer; -flat: FlatQuant transforms
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
        assertEquals(15, abq);
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
    void flatNamesMapToSchemes() {
        int flat = 0;
        for (QuantMethod m : QuantMethod.values()) {
            if (!m.isAbqFlat()) {
                assertThrows(IllegalStateException.class, m::abqFlatScheme, m.id());
                continue;
            }
            flat++;
            assertTrue(m.isAbq() && m.abqCalibrates() && !m.isFlatQuant(), m.id());
        }
        assertEquals(6, flat);
        lowbit.abq.AbqFlatScheme sym = QuantMethod.parse("abq-w6a6-flat").abqFlatScheme();
        assertEquals(new lowbit.abq.AbqFlatScheme(6, 6, false), sym);
        assertEquals(lowbit.flatquant.QuantScheme.w6a6(), sym.calibrationScheme());
        lowbit.abq.AbqFlatScheme asym = QuantMethod.parse("ABQ-W6A6-FLAT-ASYM").abqFlatScheme();
        assertEquals(new lowbit.abq.AbqFlatScheme(6, 6, true), asym);
        assertEquals(new lowbit.abq.AbqFlatScheme(6, 6, true, true), QuantMethod.parse("abq-w6a6-flat-asym-gptq").abqFlatScheme());
        assertEquals(new lowbit.abq.AbqFlatScheme(6, 6, false, true), QuantMethod.parse("abq-w6a6-flat-gptq").abqFlatScheme());
        assertEquals(new lowbit.abq.AbqFlatScheme(8, 6, false), QuantMethod.parse("abq-w8a6-flat").abqFlatScheme());
        assertFalse(asym.calibrationScheme().weights().symmetric());
        assertFalse(asym.calibrationScheme().activations().symmetric());
        assertEquals(6, asym.calibrationScheme().activations().bits());
        assertTrue(asym.weightQuantizer().isAsymmetric() && asym.activationQuantizer().isAsymmetric());
        assertFalse(sym.weightQuantizer().isAsymmetric() || sym.activationQuantizer().isAsymmetric());
        AbqConfig w8a6 = QuantMethod.parse("abq-w8a6-rtn").abqConfig();
        assertEquals(8, w8a6.weightBits());
        assertEquals(6, w8a6.activationBits());
        assertFalse(w8a6.learns());
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
