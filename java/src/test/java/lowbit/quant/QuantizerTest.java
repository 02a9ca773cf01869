package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class QuantizerTest {

    @Test
    void scalarQuantizerMatchesFp64Reference() {
        SplittableRandom r = new SplittableRandom(3);
        for (int bits : new int[] {4, 8}) {
            int qmax = SymmetricQuant.qmax(bits);
            for (int size : new int[] {1, 17, 333}) {
                float[] x = new float[size];
                for (int i = 0; i < size; i++) {
                    x[i] = (float) (r.nextGaussian() * Math.exp(3 * r.nextGaussian()));
                }
                float amax = SymmetricQuant.absMax(x, 0, size, "x");
                float s = SymmetricQuant.scale(amax, bits);
                assertEquals(amax / qmax, s, Math.ulp(s));
                for (float v : x) {
                    int q = SymmetricQuant.quantize(v, s, qmax);
                    double exact = (double) v / s;
                    assertTrue(Math.abs(q - exact) <= 0.5 + 1e-6, "q=" + q + " vs x/s=" + exact);
                    assertTrue(Math.abs(v - (double) q * s) <= 0.5 * s * (1 + 1e-6) + 1e-30);
                    assertTrue(Math.abs(q) <= qmax);
                }
            }
            assertEquals(1f, SymmetricQuant.scale(0f, bits)); // all-zero slot
        }
        // round half to even, and symmetric clamp (never -128 / -8)
        assertEquals(2, SymmetricQuant.quantize(2.5f, 1f, 127));
        assertEquals(-2, SymmetricQuant.quantize(-2.5f, 1f, 127));
        assertEquals(-127, SymmetricQuant.quantize(-1000f, 1f, 127));
        assertEquals(-7, SymmetricQuant.quantize(-8f, 1f, 7));
    }

    @Test
    void s4PackingIsLowNibbleFirstWithEvenLd() {
        PackedMatrix m = PackedMatrix.allocate(4, 2, 3);
        assertEquals(4, m.ld);
        int[][] v = {{1, -2, 3}, {-7, 7, -1}};
        for (int r = 0; r < 2; r++) {
            for (int c = 0; c < 3; c++) {
                m.set(r, c, v[r][c]);
            }
        }
        assertArrayEquals(new byte[] {(byte) 0xE1, 0x03, (byte) 0x79, 0x0F}, m.data);
        for (int r = 0; r < 2; r++) {
            for (int c = 0; c < 3; c++) {
                assertEquals(v[r][c], m.get(r, c));
            }
        }
        PackedMatrix s8 = PackedMatrix.allocate(8, 1, 3);
        s8.set(0, 1, -127);
        assertArrayEquals(new byte[] {0, (byte) -127, 0}, s8.data);
    }

    private static float[] gaussian(SplittableRandom r, int n, double sd) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (r.nextGaussian() * sd);
        }
        return v;
    }

    /** Independent simulation: flatten per channel, quantize, accumulate over K with k_j copies, float epilogue. */
    private static float[] simulate(float[] x, int m, float[] w, float[] bias, int n, int k, FlattenPlan plan, int wBits,
                                    int aBits, boolean perChannel, boolean dynamic, float staticAmax) {
        int aq = SymmetricQuant.qmax(aBits);
        int wq = SymmetricQuant.qmax(wBits);
        float[] mult = new float[k];
        int[] first = new int[k];
        int[] src = plan.sourceChannels();
        for (int j = src.length - 1 - plan.padding(); j >= 0; j--) {
            first[src[j]] = j;
        }
        float[] allMult = plan.multipliers();
        for (int j = 0; j < k; j++) {
            mult[j] = allMult[first[j]];
        }
        float amax = 0f;
        for (int t = 0; t < m; t++) {
            for (int j = 0; j < k; j++) {
                amax = Math.max(amax, Math.abs(x[t * k + j] * mult[j]));
            }
        }
        float sa = (dynamic ? amax : staticAmax) == 0f ? 1f : (dynamic ? amax : staticAmax) / aq;
        float[] ws = new float[n * k];
        for (int i = 0; i < ws.length; i++) {
            ws[i] = plan.hasInputScale() ? (float) (w[i] * plan.inputScale(i % k)) : w[i];
        }
        float[] sw = new float[perChannel ? n : 1];
        for (int o = 0; o < n; o++) {
            for (int j = 0; j < k; j++) {
                sw[perChannel ? o : 0] = Math.max(sw[perChannel ? o : 0], Math.abs(ws[o * k + j]));
            }
        }
        for (int i = 0; i < sw.length; i++) {
            sw[i] = sw[i] == 0f ? 1f : sw[i] / wq;
        }
        float[] y = new float[m * n];
        for (int t = 0; t < m; t++) {
            for (int o = 0; o < n; o++) {
                long acc = 0;
                float s = sw[perChannel ? o : 0];
                for (int j = 0; j < k; j++) {
                    long qa = (long) Math.max(-aq, Math.min(aq, Math.rint((x[t * k + j] * mult[j]) / sa)));
                    long qw = (long) Math.max(-wq, Math.min(wq, Math.rint(ws[o * k + j] / s)));
                    acc += plan.copies(j) * qa * qw;
                }
                assertTrue(acc == (int) acc);
                float v = ((float) acc * sa) * s;
                y[t * n + o] = bias == null ? v : v + bias[o];
            }
        }
        return y;
    }

    @Test
    void quantizedLinearMatchesIndependentSimulationBitForBit() {
        SplittableRandom r = new SplittableRandom(8);
        int[][] shapes = {{7, 45, 13}, {1, 3, 1}, {19, 101, 9}};
        int[][] widths = {{8, 8}, {4, 8}, {4, 4}};
        for (int[] shape : shapes) {
            int m = shape[0];
            int k = shape[1];
            int n = shape[2];
            float[] x = gaussian(r, m * k, 1);
            x[k / 2] = 40f;
            float[] w = gaussian(r, n * k, 0.1);
            float[] bias = gaussian(r, n, 1);
            int[] copies = new int[k];
            double[] scale = new double[k];
            for (int j = 0; j < k; j++) {
                copies[j] = 1 + r.nextInt(3);
                scale[j] = Math.exp(r.nextGaussian() * 0.5);
            }
            for (FlattenPlan plan : new FlattenPlan[] {FlattenPlan.identity(k), FlattenPlan.ofCopies(copies),
                    FlattenPlan.ofCopies(copies).withInputScale(scale).paddedTo(16)}) {
                for (int[] bits : widths) {
                    for (boolean perChannel : new boolean[] {true, false}) {
                        for (boolean dynamic : new boolean[] {true, false}) {
                            float staticAmax = 3.5f;
                            QuantizedLinear layer = QuantizedLinear.create(w, bias, n, k, plan, bits[0], bits[1], perChannel,
                                    null, dynamic ? QuantizedLinear.DYNAMIC : staticAmax);
                            float[] y = new float[m * n];
                            layer.forward(x, m, y);
                            float[] expect = simulate(x, m, w, bias, n, k, plan, bits[0], bits[1], perChannel, dynamic, staticAmax);
                            for (int i = 0; i < y.length; i++) {
                                assertEquals(Float.floatToIntBits(expect[i]), Float.floatToIntBits(y[i]),
                                        "element " + i + " of W" + bits[0] + "A" + bits[1] + " " + plan);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void quantizedLinearErrorWithinBoundsOnRandomOddSizes() {
        SplittableRandom r = new SplittableRandom(21);
        int m = 31;
        int k = 257;
        int n = 29;
        float[] x = gaussian(r, m * k, 1);
        float[] w = gaussian(r, n * k, 1 / Math.sqrt(k));
        double[] ref = FlattenQuantizer.referenceProduct(x, m, w, n, k);
        float[] y = new float[m * n];
        // Gaussian data: per-tensor step ~ 4.5 sigma / qmax, so rel MSE ~ 2 * (4.5/qmax)^2 / 12
        QuantizedLinear.create(w, null, n, k, FlattenPlan.identity(k), Precision.INT8, true, QuantizedLinear.DYNAMIC)
                .forward(x, m, y);
        double e8 = FlattenQuantizer.relativeError(y, ref);
        assertTrue(e8 < 4e-4 && e8 > 1e-6, "INT8 relative MSE " + e8);
        QuantizedLinear.create(w, null, n, k, FlattenPlan.identity(k), Precision.INT4, true, QuantizedLinear.DYNAMIC)
                .forward(x, m, y);
        double e4 = FlattenQuantizer.relativeError(y, ref);
        assertTrue(e4 < 0.12 && e4 > 100 * e8, "INT4 relative MSE " + e4);
    }

    @Test
    void clipSearchNeverWorseThanNoClipping() {
        SplittableRandom r = new SplittableRandom(4);
        int n = 9;
        int k = 77;
        int t = 15;
        float[] w = gaussian(r, n * k, 1);
        float[] x = gaussian(r, t * k, 1);
        double[] grid = QuantConfig.defaults().clipRatios();
        for (QuantConfig.ClipSearch mode : new QuantConfig.ClipSearch[] {QuantConfig.ClipSearch.WEIGHT_MSE, QuantConfig.ClipSearch.OUTPUT_MSE}) {
            for (boolean perChannel : new boolean[] {true, false}) {
                float[] clip = WeightQuantizer.chooseClip(w, n, k, 4, perChannel, mode, grid, x, t);
                float[] none = new float[clip.length];
                java.util.Arrays.fill(none, 1f);
                double searched = weightError(w, n, k, perChannel, clip, mode, x, t);
                double plain = weightError(w, n, k, perChannel, none, mode, x, t);
                assertTrue(searched <= plain, mode + " " + searched + " > " + plain);
                if (mode == QuantConfig.ClipSearch.WEIGHT_MSE && perChannel) {
                    assertTrue(searched < 0.95 * plain, "INT4 Gaussian weights should gain from clipping");
                }
            }
        }
    }

    private static double weightError(float[] w, int n, int k, boolean perChannel, float[] clip,
                                      QuantConfig.ClipSearch mode, float[] x, int t) {
        WeightQuantizer.Quantized q = WeightQuantizer.quantize(w, n, k, 4, perChannel, clip);
        double err = 0;
        for (int o = 0; o < n; o++) {
            float s = q.scales()[perChannel ? o : 0];
            double[] d = new double[k];
            for (int j = 0; j < k; j++) {
                d[j] = w[o * k + j] - (double) q.codes().get(o, j) * s;
            }
            if (mode == QuantConfig.ClipSearch.WEIGHT_MSE) {
                for (double v : d) {
                    err += v * v;
                }
            } else {
                for (int i = 0; i < t; i++) {
                    double e = 0;
                    for (int j = 0; j < k; j++) {
                        e += x[i * k + j] * d[j];
                    }
                    err += e * e;
                }
            }
        }
        return err;
    }

    @Test
    void staticScaleIsTheCalibratedAmaxOverQmax() {
        SplittableRandom r = new SplittableRandom(2);
        int k = 10;
        int n = 3;
        float[] w = gaussian(r, n * k, 1);
        QuantizedLinear layer = QuantizedLinear.create(w, null, n, k, FlattenPlan.identity(k), Precision.INT8, true, 2f);
        assertEquals(2f / 127, layer.activationScale());
        assertEquals("Java", layer.backend());
    }
}
