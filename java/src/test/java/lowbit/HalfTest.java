package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class HalfTest {
    @Test
    void everyF16RoundTrips() {
        for (int h = 0; h < 65536; h++) {
            float f = Half.toFloat((short) h);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(Half.toFloat(Half.fromFloat(f))));
            } else {
                assertEquals(h, Half.fromFloat(f) & 0xffff, "half 0x" + Integer.toHexString(h));
            }
        }
    }

    @Test
    void roundsHalfToEvenAndOverflowsToInfinity() {
        // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
        assertEquals(0x3c00, Half.fromFloat(1f + 0x1p-11f) & 0xffff);
        // 1 + 3·2^-11 lies halfway between 1 + 2^-10 and 1 + 2^-9: ties go to 1 + 2^-9.
        assertEquals(0x3c02, Half.fromFloat(1f + 3 * 0x1p-11f) & 0xffff);
        assertEquals(0x7bff, Half.fromFloat(65504f) & 0xffff);
        assertEquals(0x7c00, Half.fromFloat(65520f) & 0xffff);
        assertEquals(0xfc00, Half.fromFloat(-1e6f) & 0xffff);
        assertEquals(0x0001, Half.fromFloat(0x1p-24f) & 0xffff);
        assertEquals(0x0000, Half.fromFloat(0x1p-25f) & 0xffff); // tie with 0: even
        assertEquals(0x0001, Half.fromFloat(0x1.8p-25f) & 0xffff);
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals(0x3f80, Half.bf16FromFloat(1f + 0x1p-8f) & 0xffff);
        assertEquals(0x3f82, Half.bf16FromFloat(1f + 3 * 0x1p-8f) & 0xffff);
        assertTrue(Float.isNaN(Half.bf16ToFloat(Half.bf16FromFloat(Float.NaN))));
        for (int h = 0; h < 65536; h++) {
            float f = Half.bf16ToFloat((short) h);
            if (!Float.isNaN(f)) {
                assertEquals(h, Half.bf16FromFloat(f) & 0xffff);
            }
        }
    }
}
