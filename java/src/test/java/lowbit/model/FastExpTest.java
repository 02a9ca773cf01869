package lowbit.model;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;

class FastExpTest {
    @Test
    void matchesMathExpToAFewUlps() {
        double worst = 0;
        for (int i = 0; i <= 2_000_000; i++) {
            float x = -87f + i * (175f / 2_000_000);
            double exact = Math.exp(x);
            worst = Math.max(worst, Math.abs(FastExp.exp(x) - exact) / exact);
        }
        assertTrue(worst < 4e-7, "worst relative error " + worst);
        assertEquals(1f, FastExp.exp(0f), 0f);
        assertEquals(0f, FastExp.exp(-1000f), 0f);
        assertEquals(Float.POSITIVE_INFINITY, FastExp.exp(1000f), 0f);
        assertTrue(Float.isNaN(FastExp.exp(Float.NaN)));
        assertEquals(Math.exp(-87.3f), FastExp.exp(-87.3f), 1e-6 * Math.exp(-87.3f));
    }
}
