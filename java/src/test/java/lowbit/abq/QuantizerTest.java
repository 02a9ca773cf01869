package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The ABQ-LLM quantizers: grids, ranges, error bounds, bit balance, bad arguments. */
class QuantizerTest {
    static float[] gaussian(Random rnd, int n, double sd) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * sd);
        }
        return x;
    }

    /** Every element within half a step of its slot's scale, and codes inside the grid. */
    static void checkGrid(IntCodes q, float[] x, int lo, int hi, String what) {
        float[] d = q.dequantize();
        for (int r = 0; r < q.rows(); r++) {
            for (int c = 0; c < q.cols(); c++) {
                int code = q.code(r, c);
                if (code < lo || code > hi) {
                    fail(what + ": code " + code + " at (" + r + ", " + c + ") outside [" + lo + ", " + hi + "]");
                }
                double err = Math.abs(x[r * q.cols() + c] - d[r * q.cols() + c]);
                if (err > 0.5 * q.scale(r, c) * (1 + 1e-5)) {
                    fail(what + ": (" + r + ", " + c + ") off by " + err + " > scale/2 = " + q.scale(r, c) / 2);
                }
            }
        }
    }

    @Test
    void asymmetricAndSymmetricWeights() {
        Random rnd = new Random(1);
        float[] w = gaussian(rnd, 24 * 256, 0.05);
        for (int bits = 1; bits <= 8; bits++) {
            IntCodes a = WeightQuantizer.perChannel(bits).quantize(w, 24, 256);
            assertEquals(bits, a.planes());
            assertTrue(!a.isSigned() && a.hasZeroPoints());
            checkGrid(a, w, 0, (1 << bits) - 1, "asymmetric W" + bits);
            for (int z : a.zeroPoints()) {
                assertTrue(z >= 0 && z <= (1 << bits) - 1);
            }
            if (bits >= 2) {
                IntCodes s = new WeightQuantizer(bits, false, false, 0).quantize(w, 24, 256);
                int qmax = (1 << (bits - 1)) - 1;
                assertTrue(s.isSigned() && !s.hasZeroPoints());
                checkGrid(s, w, -qmax, qmax, "symmetric W" + bits);
            }
        }
    }

    @Test
    void perGroupWeights() {
        Random rnd = new Random(2);
        float[] w = gaussian(rnd, 8 * 256, 0.05);
        for (int k = 0; k < 256; k += 64) {
            w[3 * 256 + k] = 2f;  // an outlier in one group of row 3
        }
        IntCodes g = new WeightQuantizer(4, true, false, 64).quantize(w, 8, 256);
        assertEquals(4, g.slotsPerRow());
        assertEquals(32, g.scales().length);
        checkGrid(g, w, 0, 15, "W4 G64");
        IntCodes c = WeightQuantizer.perChannel(4).quantize(w, 8, 256);
        assertTrue(error(g, w) < error(c, w), "groups must not be worse than one scale per channel");
        assertThrows(IllegalArgumentException.class, () -> new WeightQuantizer(4, true, false, 48).quantize(w, 8, 256));
    }

    static double error(IntCodes q, float[] x) {
        float[] d = q.dequantize();
        double e = 0;
        for (int i = 0; i < x.length; i++) {
            e += (x[i] - d[i]) * (double) (x[i] - d[i]);
        }
        return e;
    }

    @Test
    void bitBalance() {
        Random rnd = new Random(3);
        float[] w = gaussian(rnd, 16 * 512, 0.05);
        // Symmetric W2*: {-2..2}·s, s = amax/2, three signed planes.
        IntCodes b = WeightQuantizer.bitBalanced(2).quantize(w, 16, 512);
        assertEquals(3, b.planes());
        assertTrue(b.isSigned() && !b.hasZeroPoints());
        checkGrid(b, w, -2, 2, "W2* symmetric");
        boolean[] seen = new boolean[5];
        for (int v : b.codes()) {
            seen[v + 2] = true;
        }
        for (boolean s : seen) {
            assertTrue(s, "all five levels are used");
        }
        // Ternary W1*: {-1, 0, 1}, two planes.
        IntCodes t = WeightQuantizer.bitBalanced(1).quantize(w, 16, 512);
        assertEquals(2, t.planes());
        checkGrid(t, w, -1, 1, "W1* ternary");
        // ABQ-LLM's asymmetric bit balance: codes 0..4 with a zero point, three unsigned planes.
        IntCodes a = new WeightQuantizer(2, true, true, 0).quantize(w, 16, 512);
        assertEquals(3, a.planes());
        checkGrid(a, w, 0, 4, "W2* asymmetric");
        // Five levels beat four: the bit-balanced grid has the smaller error.
        IntCodes plain = WeightQuantizer.perChannel(2).quantize(w, 16, 512);
        assertTrue(error(b, w) < error(plain, w), "W2* " + error(b, w) + " vs W2 " + error(plain, w));
        assertThrows(IllegalArgumentException.class, () -> new WeightQuantizer(3, false, true, 0));
    }

    @Test
    void activationsPerToken() {
        Random rnd = new Random(4);
        float[] x = gaussian(rnd, 5 * 100, 3);
        for (int i = 0; i < 100; i++) {
            x[100 + i] = 0f;                    // all zero: scale 1, codes = z
            x[200 + i] = Math.abs(x[200 + i]) + 1; // all positive: the range still holds 0, z = 0
        }
        for (int bits = 1; bits <= 8; bits++) {
            IntCodes a = ActivationQuantizer.asymmetric(bits).quantize(x, 5, 100);
            checkGrid(a, x, 0, (1 << bits) - 1, "A" + bits + " asymmetric");
            assertEquals(1f, a.scale(1, 0));
            assertEquals(0, a.zeroPoints()[2]);
            if (bits >= 2) {
                IntCodes s = ActivationQuantizer.symmetric(bits).quantize(x, 5, 100);
                int qmax = (1 << (bits - 1)) - 1;
                checkGrid(s, x, -qmax, qmax, "A" + bits + " symmetric");
            }
        }
        // Overflowing range: the scale saturates at Float.MAX_VALUE instead of becoming +Inf.
        float[] huge = {Float.MAX_VALUE, -Float.MAX_VALUE};
        IntCodes h = ActivationQuantizer.asymmetric(1).quantize(huge, 1, 2);
        assertEquals(Float.MAX_VALUE, h.scale(0, 0));
        assertThrows(IllegalArgumentException.class, () -> ActivationQuantizer.symmetric(1));
        assertThrows(IllegalArgumentException.class, () -> ActivationQuantizer.asymmetric(9));
        assertThrows(IllegalArgumentException.class,
                () -> ActivationQuantizer.asymmetric(4).quantize(new float[] {1, Float.NaN}, 1, 2));
    }
}
