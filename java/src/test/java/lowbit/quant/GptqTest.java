package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import lowbit.flatquant.ClippedWeights;
import org.junit.jupiter.api.Test;

/**
 * GPTQ ({@link Gptq}) against independent FP64 references on odd sizes (37 x 29 weights, 211 tokens):
 * with a diagonal Hessian (inputs with orthogonal channels) it is round-to-nearest exactly, the
 * FlatQuant RTN codes and scales ({@link ClippedWeights#quantize}); on correlated inputs it matches a
 * plain column loop (no lazy blocks; {@code H⁻¹} by Gauss-Jordan and its upper Cholesky factor computed
 * the textbook way) code for code, for several block sizes and with act-order, and its output error
 * {@code ‖X·Wᵀ − X·Ŵᵀ‖} is below RTN's; bad inputs are refused with clear exceptions.
 */
class GptqTest {
    private static final int ROWS = 37, COLS = 29, TOKENS = 211;

    /** {@code TOKENS × COLS} inputs with correlated channels of different magnitudes: {@code Z·M}, M random. */
    private static float[] correlatedInputs(Random rnd) {
        double[] m = new double[COLS * COLS];
        for (int i = 0; i < m.length; i++) m[i] = rnd.nextGaussian() * (i / COLS == i % COLS ? 2 : 0.7);
        float[] x = new float[TOKENS * COLS];
        for (int t = 0; t < TOKENS; t++) {
            double[] z = new double[COLS];
            for (int i = 0; i < COLS; i++) z[i] = rnd.nextGaussian();
            for (int j = 0; j < COLS; j++) {
                double s = 0;
                for (int i = 0; i < COLS; i++) s += z[i] * m[i * COLS + j];
                x[t * COLS + j] = (float) (s * (1 + j % 5));
            }
        }
        return x;
    }

    private static double[] gaussian(Random rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian();
        return v;
    }

    /** Clip factors in [0.7, 1] per row, as a calibration leaves them. */
    private static double[] clips(Random rnd, int rows) {
        double[] c = new double[2 * rows];
        for (int i = 0; i < c.length; i++) c[i] = 0.7 + 0.3 * rnd.nextDouble();
        return c;
    }

    /** {@code ‖X·Wᵀ − X·Ŵᵀ‖_F} with {@code Ŵ = code·(float) s} (what the layer multiplies). */
    private static double outputError(float[] x, double[] w, ClippedWeights q) {
        double e = 0;
        for (int t = 0; t < TOKENS; t++) {
            for (int r = 0; r < ROWS; r++) {
                double d = 0;
                for (int c = 0; c < COLS; c++) d += x[t * COLS + c] * (w[r * COLS + c] - q.codes()[r * COLS + c] * (double) q.scales()[r]);
                e += d * d;
            }
        }
        return Math.sqrt(e);
    }

    /** The factor the column loop uses: upper triangular with UᵀU·H = I (H dampened as GPTQ does not need here). */
    @Test
    void factorIsTheUpperCholeskyOfTheInverse() {
        Random rnd = new Random(3);
        int k = 23, tokens = 60;
        float[] x = new float[tokens * k];
        for (int t = 0; t < tokens; t++) {
            double common = rnd.nextGaussian();
            for (int c = 0; c < k; c++) x[t * k + c] = (float) (0.8 * common * (1 + c % 3) + rnd.nextGaussian() * (c == 4 ? 5 : 1));
        }
        double[] h = Gptq.hessian(x, tokens, k);
        double[] u = Gptq.inverseCholeskyUpper(h, k);
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < i; j++) assertEquals(0, u[i * k + j], "U is upper triangular");
            for (int j = 0; j < k; j++) {
                double s = 0; // (UᵀU·H)_ij
                for (int p = 0; p < k; p++) {
                    double utu = 0;
                    for (int q = 0; q < k; q++) utu += u[q * k + i] * u[q * k + p];
                    s += utu * h[p * k + j];
                }
                assertEquals(i == j ? 1 : 0, s, 1e-8, "(UᵀU·H)[" + i + "][" + j + "]");
            }
        }
    }

    /** {@code XᵀX} the plain way (both triangles, token order). */
    private static double[] gram(float[] x) {
        double[] h = new double[COLS * COLS];
        for (int i = 0; i < COLS; i++) {
            for (int j = 0; j < COLS; j++) {
                double s = 0;
                for (int t = 0; t < TOKENS; t++) s += (double) x[t * COLS + i] * x[t * COLS + j];
                h[i * COLS + j] = s;
            }
        }
        return h;
    }

    @Test
    void diagonalHessianIsRoundToNearest() {
        Random rnd = new Random(11);
        // every token has one nonzero channel: XᵀX is diagonal exactly
        float[] x = new float[TOKENS * COLS];
        for (int t = 0; t < TOKENS; t++) x[t * COLS + t % COLS] = (float) (rnd.nextGaussian() * (1 + t % 7));
        double[] h = Gptq.hessian(x, TOKENS, COLS);
        for (int i = 0; i < COLS; i++) {
            assertTrue(h[i * COLS + i] > 0, "diagonal " + i);
            for (int j = 0; j < COLS; j++) if (i != j) assertEquals(0.0, h[i * COLS + j], "off-diagonal " + i + "," + j);
        }
        double[] identity = new double[COLS * COLS];
        for (int i = 0; i < COLS; i++) identity[i * COLS + i] = 1;
        for (int bits : new int[] {4, 8}) {
            for (double[] hessian : new double[][] {h, identity}) {
                for (boolean actOrder : new boolean[] {false, true}) {
                    double[] w = gaussian(rnd, ROWS * COLS);
                    double[] clip = clips(rnd, ROWS);
                    ClippedWeights rtn = ClippedWeights.quantize(w, ROWS, COLS, bits, clip);
                    ClippedWeights g = ClippedWeights.gptq(w, ROWS, COLS, bits, clip, hessian, Gptq.Options.defaults().withActOrder(actOrder).withBlockSize(7));
                    assertArrayEquals(rtn.codes(), g.codes(), "W" + bits + " act-order " + actOrder);
                    assertArrayEquals(rtn.scales(), g.scales());
                    assertArrayEquals(rtn.packed(), g.packed());
                }
            }
        }
    }

    @Test
    void deadChannelsGetCodeZero() {
        Random rnd = new Random(12);
        float[] x = correlatedInputs(rnd);
        for (int t = 0; t < TOKENS; t++) {
            x[t * COLS + 3] = 0;
            x[t * COLS + 20] = 0;
        }
        double[] w = gaussian(rnd, ROWS * COLS);
        double[] s = new double[ROWS];
        Arrays.fill(s, 0.3);
        int[] q = Gptq.quantize(w, ROWS, COLS, Gptq.hessian(x, TOKENS, COLS), s, 4, Gptq.Options.defaults());
        int nonzero = 0;
        for (int r = 0; r < ROWS; r++) {
            assertEquals(0, q[r * COLS + 3], "dead channel 3, row " + r);
            assertEquals(0, q[r * COLS + 20], "dead channel 20, row " + r);
            for (int c = 0; c < COLS; c++) nonzero += q[r * COLS + c] != 0 ? 1 : 0;
        }
        assertTrue(nonzero > ROWS * COLS / 2, "live channels keep their codes: " + nonzero);
    }

    /** The dampened Hessian as {@link Gptq#quantize} makes it (no dead channels here). */
    private static double[] dampened(double[] h, int n) {
        double[] d = h.clone();
        double mean = 0;
        for (int i = 0; i < n; i++) mean += h[i * n + i];
        for (int i = 0; i < n; i++) d[i * n + i] += Gptq.DEFAULT_DAMPING * mean / n;
        return d;
    }

    /** {@code A⁻¹} by Gauss-Jordan elimination with partial pivoting. */
    private static double[] inverse(double[] a, int n) {
        double[] m = a.clone(), inv = new double[n * n];
        for (int i = 0; i < n; i++) inv[i * n + i] = 1;
        for (int c = 0; c < n; c++) {
            int p = c;
            for (int r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
            for (int k = 0; k < n; k++) {
                double t = m[c * n + k]; m[c * n + k] = m[p * n + k]; m[p * n + k] = t;
                t = inv[c * n + k]; inv[c * n + k] = inv[p * n + k]; inv[p * n + k] = t;
            }
            double d = m[c * n + c];
            for (int k = 0; k < n; k++) {
                m[c * n + k] /= d;
                inv[c * n + k] /= d;
            }
            for (int r = 0; r < n; r++) {
                if (r == c) continue;
                double f = m[r * n + c];
                for (int k = 0; k < n; k++) {
                    m[r * n + k] -= f * m[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
        return inv;
    }

    /** The upper {@code U} with {@code UᵀU = a}, row by row (textbook). */
    private static double[] upperCholesky(double[] a, int n) {
        double[] u = new double[n * n];
        for (int i = 0; i < n; i++) {
            double d = a[i * n + i];
            for (int k = 0; k < i; k++) d -= u[k * n + i] * u[k * n + i];
            u[i * n + i] = Math.sqrt(d);
            for (int j = i + 1; j < n; j++) {
                double s = a[i * n + j];
                for (int k = 0; k < i; k++) s -= u[k * n + i] * u[k * n + j];
                u[i * n + j] = s / u[i * n + i];
            }
        }
        return u;
    }

    /** The plain GPTQ column loop over the whole matrix (no blocks): the reference's algorithm, column by column. */
    private static int[] plainLoop(double[] w0, int rows, int n, double[] u, double[] s, int bits) {
        double[] w = w0.clone();
        int qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;
        int[] q = new int[rows * n];
        Arrays.fill(q, Integer.MIN_VALUE); // poisoned: every code must be written
        for (int i = 0; i < n; i++) {
            for (int r = 0; r < rows; r++) {
                double v = w[r * n + i];
                int code = (int) Math.max(qmin, Math.min(qmax, Math.rint(v / s[r])));
                q[r * n + i] = code;
                double err = (v - code * s[r]) / u[i * n + i];
                for (int k = i + 1; k < n; k++) w[r * n + k] -= err * u[i * n + k];
            }
        }
        return q;
    }

    @Test
    void correlatedInputsMatchThePlainLoopAndBeatRoundToNearest() {
        Random rnd = new Random(13);
        float[] x = correlatedInputs(rnd);
        double[] h = Gptq.hessian(x, TOKENS, COLS);
        double[] hPlain = gram(x);
        for (int i = 0; i < h.length; i++) assertEquals(hPlain[i], h[i], 1e-12 * Math.abs(hPlain[i]) + 1e-12, "Hessian entry " + i);
        double[] hd = dampened(h, COLS);
        double[] uLib = Gptq.inverseCholeskyUpper(hd, COLS);
        // UᵀU·H = I and U upper triangular
        for (int i = 0; i < COLS; i++) {
            for (int j = 0; j < COLS; j++) {
                if (j < i) assertEquals(0.0, uLib[i * COLS + j]);
                double s = 0;
                for (int k = 0; k < COLS; k++) {
                    double hinv = 0;
                    for (int m = 0; m < COLS; m++) hinv += uLib[m * COLS + i] * uLib[m * COLS + k];
                    s += hinv * hd[k * COLS + j];
                }
                assertEquals(i == j ? 1 : 0, s, 1e-9, "UᵀU·H at " + i + "," + j);
            }
        }
        double[] uRef = upperCholesky(inverse(hd, COLS), COLS);
        for (int i = 0; i < uRef.length; i++) assertEquals(uRef[i], uLib[i], 1e-9 * Math.abs(uRef[i]) + 1e-12, "U entry " + i);
        for (int bits : new int[] {4, 8}) {
            double[] w = gaussian(rnd, ROWS * COLS);
            double[] clip = clips(rnd, ROWS);
            ClippedWeights rtn = ClippedWeights.quantize(w, ROWS, COLS, bits, clip);
            double[] s = new double[ROWS];
            for (int r = 0; r < ROWS; r++) {
                double max = Double.NEGATIVE_INFINITY, min = Double.POSITIVE_INFINITY;
                for (int c = 0; c < COLS; c++) {
                    max = Math.max(max, w[r * COLS + c]);
                    min = Math.min(min, w[r * COLS + c]);
                }
                s[r] = Math.max(Math.abs(clip[2 * r + 1] * min), Math.abs(clip[2 * r] * max)) / ((1 << (bits - 1)) - 1);
                assertEquals((float) s[r], rtn.scales()[r], "scale of row " + r);
            }
            int[] ref = plainLoop(w, ROWS, COLS, uRef, s, bits);
            // the blocked loop on the library's factor equals the plain loop on it bit for bit
            int[] plainLib = plainLoop(w, ROWS, COLS, uLib, s, bits);
            for (int block : new int[] {1, 5, 29, 128}) {
                assertArrayEquals(plainLib, Gptq.columnLoop(w, ROWS, COLS, uLib, Gptq.symmetricGrid(s, bits), block), "W" + bits + " block " + block);
                ClippedWeights g = ClippedWeights.gptq(w, ROWS, COLS, bits, clip, h, Gptq.Options.defaults().withBlockSize(block));
                assertArrayEquals(ref, g.codes(), "W" + bits + " block " + block + " vs the independent reference");
                assertArrayEquals(rtn.scales(), g.scales());
                ClippedWeights refWeights = new ClippedWeights(bits, ROWS, COLS, ref, rtn.scales());
                double eg = outputError(x, w, g), er = outputError(x, w, rtn), eref = outputError(x, w, refWeights);
                assertEquals(eref, eg, 1e-12 * eref);
                assertTrue(eg < (bits == 4 ? 0.8 : 0.95) * er, "W" + bits + ": GPTQ output error " + eg + " vs RTN " + er);
            }
            assertNotEquals(Arrays.toString(rtn.codes()), Arrays.toString(ref), "GPTQ changes codes on correlated inputs");
            // act-order: the plain loop on columns sorted by descending H[j][j] (stable), codes mapped back
            Integer[] order = new Integer[COLS];
            for (int i = 0; i < COLS; i++) order[i] = i;
            Arrays.sort(order, (a, b) -> Double.compare(h[b * COLS + b], h[a * COLS + a]));
            double[] hp = new double[COLS * COLS], wp = new double[ROWS * COLS];
            for (int i = 0; i < COLS; i++) {
                for (int j = 0; j < COLS; j++) hp[i * COLS + j] = h[order[i] * COLS + order[j]];
                for (int r = 0; r < ROWS; r++) wp[r * COLS + i] = w[r * COLS + order[i]];
            }
            int[] refPermuted = plainLoop(wp, ROWS, COLS, upperCholesky(inverse(dampened(hp, COLS), COLS), COLS), s, bits);
            int[] refAct = new int[ROWS * COLS];
            for (int r = 0; r < ROWS; r++) for (int i = 0; i < COLS; i++) refAct[r * COLS + order[i]] = refPermuted[r * COLS + i];
            ClippedWeights act = ClippedWeights.gptq(w, ROWS, COLS, bits, clip, h, Gptq.Options.defaults().withActOrder(true));
            assertArrayEquals(refAct, act.codes(), "W" + bits + " act-order");
            assertTrue(outputError(x, w, act) < outputError(x, w, rtn), "act-order beats RTN");
        }
    }

    @Test
    void badInputsAreRefused() {
        Random rnd = new Random(14);
        float[] x = correlatedInputs(rnd);
        double[] h = Gptq.hessian(x, TOKENS, COLS);
        double[] w = gaussian(rnd, ROWS * COLS);
        double[] s = new double[ROWS];
        Arrays.fill(s, 0.2);
        Gptq.Options o = Gptq.Options.defaults();

        double[] nanH = h.clone();
        nanH[5 * COLS + 7] = Double.NaN;
        assertThrows(NonFiniteValueException.class, () -> Gptq.quantize(w, ROWS, COLS, nanH, s, 4, o));
        double[] nanW = w.clone();
        nanW[3 * COLS + 2] = Double.POSITIVE_INFINITY;
        assertMessage(assertThrows(NonFiniteValueException.class, () -> Gptq.quantize(nanW, ROWS, COLS, h, s, 4, o)), "row 3, column 2");
        assertThrows(IllegalArgumentException.class, () -> ClippedWeights.gptq(nanW, ROWS, COLS, 4, null, h, o));
        float[] nanX = x.clone();
        nanX[100] = Float.NaN;
        assertThrows(NonFiniteValueException.class, () -> Gptq.hessian(nanX, TOKENS, COLS));

        assertMessage(assertThrows(ShapeMismatchException.class, () -> Gptq.quantize(w, ROWS, COLS, Arrays.copyOf(h, h.length - 1), s, 4, o)), "Hessian");
        assertThrows(ShapeMismatchException.class, () -> Gptq.quantize(w, ROWS, COLS + 1, h, s, 4, o));
        assertThrows(ShapeMismatchException.class, () -> Gptq.quantize(w, ROWS, COLS, h, Arrays.copyOf(s, ROWS - 1), 4, o));
        assertThrows(ShapeMismatchException.class, () -> Gptq.hessian(x, TOKENS + 1, COLS));
        assertThrows(IllegalArgumentException.class, () -> ClippedWeights.gptq(w, ROWS, COLS, 4, null, new double[4], o));
        double[] zeroScale = s.clone();
        zeroScale[4] = 0;
        assertThrows(IllegalArgumentException.class, () -> Gptq.quantize(w, ROWS, COLS, h, zeroScale, 4, o));
        assertThrows(IllegalArgumentException.class, () -> Gptq.quantize(w, ROWS, COLS, h, s, 9, o));
        assertThrows(IllegalArgumentException.class, () -> Gptq.quantize(w, ROWS, COLS, h, s, 4, null));
        assertThrows(IllegalArgumentException.class, () -> new Gptq.Options(0, 128, false));
        assertThrows(IllegalArgumentException.class, () -> new Gptq.Options(0.01, 0, false));

        double[] asym = h.clone();
        asym[2 * COLS + 9] *= 1.01;
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Gptq.quantize(w, ROWS, COLS, asym, s, 4, o)), "not symmetric");
        double[] negative = h.clone();
        negative[6 * COLS + 6] = -1;
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Gptq.quantize(w, ROWS, COLS, negative, s, 4, o)), "negative");
        // positive diagonal, an eigenvalue -1 that 1% dampening does not lift: not positive definite
        double[] indefinite = {1, 2, 2, 1};
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> Gptq.quantize(new double[] {0.5, -0.5}, 1, 2, indefinite, new double[] {0.1}, 4, o)), "not positive definite");
    }

    private static void assertMessage(Exception e, String part) {
        assertTrue(e.getMessage().contains(part), "message '" + e.getMessage() + "' should mention " + part);
    }
}
