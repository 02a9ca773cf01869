package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import lowbit.quant.Gptq;
import org.junit.jupiter.api.Test;

/**
 * {@link GptqRounding}: the factor {@code U} satisfies {@code UᵀU·A = I}; with a diagonal H the codes
 * are the round-to-nearest ones; on correlated inputs the codes equal an independent FP64
 * re-implementation (the original OBS form: {@code H⁻¹} updated by a Schur complement after every
 * column, no Cholesky), keep the grid's scales and zero points, and give a lower output error
 * {@code ‖X·Wᵀ − X·Ŵᵀ‖} than round to nearest; bad input throws.
 */
class GptqRoundingTest {
    private static float[] correlatedInputs(Random rnd, int tokens, int k) {
        float[] x = new float[tokens * k];
        for (int t = 0; t < tokens; t++) {
            double common = rnd.nextGaussian();
            for (int c = 0; c < k; c++) x[t * k + c] = (float) (0.8 * common * (1 + c % 3) + rnd.nextGaussian() * (c == 4 ? 5 : 1));
        }
        return x;
    }

    private static double[] hessian(float[] x, int tokens, int k) {
        double[] h = new double[k * k];
        Gptq.accumulate(h, x, tokens, k);
        Gptq.symmetrize(h, k);
        return h;
    }

    /** The reference: OBS with the explicit inverse, downdated by the Schur complement of each quantized column. */
    private static int[] reference(float[] w, int n, int k, WeightQuantizer q, IntCodes grid, double[] h) {
        double[] a = h.clone();
        double mean = 0;
        for (int j = 0; j < k; j++) mean += a[j * k + j];
        for (int j = 0; j < k; j++) a[j * k + j] += Gptq.DEFAULT_DAMPING * mean / k;
        double[] inv = invert(a, k);
        int[] codes = new int[n * k];
        for (int r = 0; r < n; r++) {
            double[] hi = inv.clone();
            double[] wr = new double[k];
            for (int c = 0; c < k; c++) wr[c] = w[r * k + c];
            float s = grid.scale(r, 0);
            int z = grid.hasZeroPoints() ? grid.zeroPoints()[r] : 0;
            for (int j = 0; j < k; j++) {
                int code = q.isAsymmetric() ? Grid.asymmetricCode((float) wr[j], s, z, q.qmax()) : Grid.symmetricCode((float) wr[j], s, q.qmax());
                codes[r * k + j] = code;
                double e = (wr[j] - (double) s * (code - z)) / hi[j * k + j];
                for (int c = j + 1; c < k; c++) wr[c] -= e * hi[j * k + c];
                double d = hi[j * k + j];
                for (int i = j + 1; i < k; i++) {
                    for (int c = j + 1; c < k; c++) hi[i * k + c] -= hi[i * k + j] * hi[j * k + c] / d;
                }
            }
        }
        return codes;
    }

    /** Gauss-Jordan inverse with partial pivoting, FP64. */
    private static double[] invert(double[] a, int k) {
        double[] m = a.clone(), inv = new double[k * k];
        for (int i = 0; i < k; i++) inv[i * k + i] = 1;
        for (int c = 0; c < k; c++) {
            int p = c;
            for (int r = c + 1; r < k; r++) if (Math.abs(m[r * k + c]) > Math.abs(m[p * k + c])) p = r;
            for (int j = 0; j < k; j++) {
                double t = m[c * k + j]; m[c * k + j] = m[p * k + j]; m[p * k + j] = t;
                t = inv[c * k + j]; inv[c * k + j] = inv[p * k + j]; inv[p * k + j] = t;
            }
            double d = m[c * k + c];
            for (int j = 0; j < k; j++) { m[c * k + j] /= d; inv[c * k + j] /= d; }
            for (int r = 0; r < k; r++) {
                if (r == c) continue;
                double f = m[r * k + c];
                for (int j = 0; j < k; j++) { m[r * k + j] -= f * m[c * k + j]; inv[r * k + j] -= f * inv[c * k + j]; }
            }
        }
        return inv;
    }

    private static double outputError(float[] x, int tokens, float[] w, IntCodes q, int n, int k) {
        float[] deq = q.dequantize();
        double err = 0;
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < n; r++) {
                double a = 0, b = 0;
                for (int c = 0; c < k; c++) {
                    a += (double) x[t * k + c] * w[r * k + c];
                    b += (double) x[t * k + c] * deq[r * k + c];
                }
                err += (a - b) * (a - b);
            }
        }
        return Math.sqrt(err);
    }

    @Test
    void diagonalHessianGivesRoundToNearest() {
        Random rnd = new Random(5);
        int n = 9, k = 31;
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.1);
        double[] h = new double[k * k];
        for (int j = 0; j < k; j++) h[j * k + j] = 0.5 + rnd.nextDouble();
        for (boolean asym : new boolean[] {true, false}) {
            WeightQuantizer q = new WeightQuantizer(6, asym, false, 0);
            IntCodes rtn = q.quantize(w, n, k);
            IntCodes g = GptqRounding.quantize(w, n, k, q, rtn, h);
            assertArrayEquals(rtn.codes(), g.codes(), asym ? "asymmetric" : "symmetric");
        }
    }

    @Test
    void matchesTheObsReferenceAndBeatsRoundToNearest() {
        Random rnd = new Random(11);
        int n = 37, k = 29, tokens = 211;
        float[] x = correlatedInputs(rnd, tokens, k);
        double[] h = hessian(x, tokens, k);
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.1);
        double[] clip = new double[2 * n];
        for (int i = 0; i < clip.length; i++) clip[i] = 0.8 + 0.2 * rnd.nextDouble();
        for (int bits : new int[] {3, 6}) {
            for (boolean asym : new boolean[] {true, false}) {
                String what = "W" + bits + (asym ? " asym" : " sym");
                WeightQuantizer q = new WeightQuantizer(bits, asym, false, 0);
                IntCodes rtn = ClippedWeightQuantizer.quantize(w, n, k, q, clip);
                IntCodes g = GptqRounding.quantize(w, n, k, q, rtn, h);
                assertArrayEquals(reference(w, n, k, q, rtn, h), g.codes(), what + ": codes vs the OBS reference");
                assertArrayEquals(rtn.scales(), g.scales(), what + ": scales kept");
                assertArrayEquals(rtn.zeroPoints(), g.zeroPoints(), what + ": zero points kept");
                double eg = outputError(x, tokens, w, g, n, k), er = outputError(x, tokens, w, rtn, n, k);
                assertTrue(eg < 0.9 * er, what + ": GPTQ output error " + eg + " vs round to nearest " + er);
            }
        }
    }

    @Test
    void deadInputsAndBadInput() {
        Random rnd = new Random(2);
        int n = 4, k = 7;
        float[] x = correlatedInputs(rnd, 30, k);
        for (int t = 0; t < 30; t++) x[t * k + 2] = 0; // a dead input channel
        double[] h = hessian(x, 30, k);
        float[] w = QuantizerTest.gaussian(rnd, n * k, 0.1);
        WeightQuantizer q = WeightQuantizer.perChannel(4);
        IntCodes rtn = q.quantize(w, n, k);
        IntCodes g = GptqRounding.quantize(w, n, k, q, rtn, h);
        for (int r = 0; r < n; r++) assertEquals(rtn.zeroPoints()[r], g.code(r, 2), "a dead input's weight is zeroed: its code is the zero point");
        double[] nan = h.clone();
        nan[3] = Double.NaN;
        assertThrows(IllegalArgumentException.class, () -> GptqRounding.quantize(w, n, k, q, rtn, nan), "NaN in H");
        double[] neg = h.clone();
        neg[k + 1] = -1;
        assertThrows(IllegalArgumentException.class, () -> GptqRounding.quantize(w, n, k, q, rtn, neg), "negative diagonal");
        assertThrows(IllegalArgumentException.class, () -> GptqRounding.quantize(w, n, k, q, rtn, new double[k * k - 1]), "H size");
        float[] wn = w.clone();
        wn[5] = Float.POSITIVE_INFINITY;
        assertThrows(IllegalArgumentException.class, () -> GptqRounding.quantize(wn, n, k, q, rtn, h), "Inf weight");
        assertThrows(IllegalArgumentException.class, () -> GptqRounding.quantize(w, n, k, WeightQuantizer.perChannel(3), rtn, h), "grid of another width");
        assertThrows(IllegalArgumentException.class, () -> GptqRounding.quantize(w, n, k, new WeightQuantizer(4, false, false, 0), rtn, h), "symmetric vs zero points");
        assertThrows(IllegalArgumentException.class, () -> GptqRounding.quantize(w, n - 1, k, q, rtn, h), "shape");
        assertThrows(IllegalArgumentException.class, () -> Gptq.accumulate(new double[k * k], new float[k], 2, k), "x too short");
    }
}
