package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import lowbit.calibrate.ClipFactors;
import lowbit.calibrate.FakeQuant;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;
import org.junit.jupiter.api.Test;

/**
 * Weight codes with learned clipping: factor 1 is {@link WeightQuantizer#quantize} code for code
 * (asymmetric, bit-balanced W2*, symmetric); with random factors the dequantized codes are the
 * calibration's fake quantizer ({@link FakeQuant} with the same clip logits) up to float32 rounding
 * (odd shape 13 × 37); bad factors and non-finite weights are refused.
 */
class ClippedWeightQuantizerTest {
    private static final int N = 13, K = 37;
    private final Random rnd = new Random(3);

    private float[] weights() {
        float[] w = new float[N * K];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.05 * (1 + i % 7));
        return w;
    }

    @Test
    void unitFactorsAreRoundToNearest() {
        float[] w = weights();
        double[] ones = new double[2 * N];
        Arrays.fill(ones, 1.0);
        for (WeightQuantizer q : new WeightQuantizer[] {WeightQuantizer.perChannel(4), new WeightQuantizer(2, true, true, 0),
                new WeightQuantizer(4, false, false, 0), WeightQuantizer.perChannel(6)}) {
            IntCodes ref = q.quantize(w, N, K), got = ClippedWeightQuantizer.quantize(w, N, K, q, ones);
            assertArrayEquals(ref.codes(), got.codes(), q.toString());
            assertArrayEquals(ref.scales(), got.scales(), q.toString());
            assertArrayEquals(ref.zeroPoints(), got.zeroPoints(), q.toString());
            assertEquals(ref.planes(), got.planes());
            assertEquals(ref.isSigned(), got.isSigned());
        }
    }

    @Test
    void clippedCodesMatchTheCalibrationFakeQuantizer() {
        for (AbqConfig cfg : new AbqConfig[] {AbqConfig.authors(4, 4, false, true), AbqConfig.authors(2, 8, true, true), AbqConfig.authors(6, 6, false, true)}) {
            float[] w = weights();
            double[] logits = new double[2 * N];
            for (int i = 0; i < logits.length; i++) logits[i] = rnd.nextGaussian() + 1; // factors about 0.5 .. 0.95
            ClipFactors clip = new ClipFactors("clip", N, 0);
            clip.param().set(logits);
            IntCodes codes = ClippedWeightQuantizer.quantize(w, N, K, cfg.weightQuantizer(), clip.factors());
            float[] deq = codes.dequantize();
            double[] wd = new double[w.length];
            for (int i = 0; i < w.length; i++) wd[i] = w[i];
            double[] fake = FakeQuant.apply(Tape.fp64(), Var.constant(wd, N, K), cfg.weightSpec(), clip).value();
            int offByOne = 0;
            for (int r = 0; r < N; r++) {
                double step = codes.scale(r, 0);
                for (int c = 0; c < K; c++) {
                    double d = Math.abs(deq[r * K + c] - fake[r * K + c]);
                    if (d > 1e-5 * step) {
                        offByOne++;
                        assertTrue(d < 1.001 * step, cfg.widths() + " row " + r + " col " + c + ": " + deq[r * K + c] + " vs " + fake[r * K + c]);
                    }
                }
            }
            assertTrue(offByOne <= 2, cfg.widths() + ": " + offByOne + " elements a level apart (float32 vs FP64 ties only)");
            // clipping bites: some weight is not representable without it
            assertTrue(!Arrays.equals(codes.codes(), cfg.weightQuantizer().quantize(w, N, K).codes()));
        }
    }

    @Test
    void refusesBadFactorsAndWeights() {
        WeightQuantizer q = WeightQuantizer.perChannel(4);
        float[] w = weights();
        double[] good = new double[2 * N];
        Arrays.fill(good, 0.9);
        assertThrows(IllegalArgumentException.class, () -> ClippedWeightQuantizer.quantize(w, N, K, q, new double[N]));
        for (double bad : new double[] {0, -0.5, 1.5, Double.NaN}) {
            double[] f = good.clone();
            f[5] = bad;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ClippedWeightQuantizer.quantize(w, N, K, q, f));
            assertTrue(e.getMessage().contains("clip factor 5"), e.getMessage());
        }
        float[] nan = w.clone();
        nan[40] = Float.NaN;
        assertThrows(IllegalArgumentException.class, () -> ClippedWeightQuantizer.quantize(nan, N, K, q, good));
        assertThrows(IllegalArgumentException.class, () -> ClippedWeightQuantizer.quantize(w, N, K - 1, q, good));
        assertThrows(IllegalArgumentException.class, () -> ClippedWeightQuantizer.quantize(w, N, K, new WeightQuantizer(4, true, false, 37), good));
    }
}
