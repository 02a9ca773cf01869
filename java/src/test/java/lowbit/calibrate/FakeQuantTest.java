package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import lowbit.Granularity;
import org.junit.jupiter.api.Test;

/**
 * Fake quantization: values against an independent per-group reference (exact), grid properties,
 * STE gradients against finite differences with the rounding residuals frozen (which makes the
 * STE gradient the exact derivative; bound {@link GradCheck#TOL}), bad input.
 */
class FakeQuantTest {
    private final Random rnd = new Random(5);

    private static final List<QuantSpec> SPECS = List.of(
            QuantSpec.asymmetric(4, Granularity.PER_ROW), QuantSpec.symmetric(4, Granularity.PER_ROW),
            QuantSpec.asymmetric(8, Granularity.PER_TENSOR), QuantSpec.symmetric(3, Granularity.PER_TENSOR),
            QuantSpec.grouped(4, false, 5), QuantSpec.grouped(8, true, 3), QuantSpec.grouped(4, false, 3), new QuantSpec(2, false, Granularity.PER_ROW, 0, true));

    @Test
    void valuesMatchReferenceAndLieOnTheGrid() {
        for (QuantSpec spec : SPECS) {
            Var x = GradCheck.input(rnd, 7, 15, 2);
            ClipFactors clip = new ClipFactors("c", spec.groupCount(7, 15), 1.5);
            for (ClipFactors c : new ClipFactors[] {null, clip}) {
                double[] y = FakeQuant.apply(Tape.fp64(), x, spec, c).value;
                int len = spec.groupLength(7, 15);
                for (int g = 0; g < x.value.length / len; g++) {
                    double[] ref = reference(x.value, g * len, len, spec, c == null ? 1 : sigmoid(1.5));
                    TreeSet<Double> levels = new TreeSet<>();
                    for (int i = 0; i < len; i++) {
                        assertEquals(ref[i], y[g * len + i], 0.0, spec + " group " + g);
                        levels.add(y[g * len + i] + 0.0); // −0.0 and 0.0 are one level
                    }
                    int maxLevels = spec.bitBalance() ? (1 << spec.bits()) + 1 : 1 << spec.bits();
                    assertTrue(levels.size() <= maxLevels, spec + ": " + levels.size() + " levels");
                }
            }
        }
    }

    /** Independent restatement of the quantizer for one group with factor f on both ends. */
    private static double[] reference(double[] x, int off, int len, QuantSpec spec, double f) {
        double mn = Double.MAX_VALUE, mx = -Double.MAX_VALUE;
        for (int i = 0; i < len; i++) {
            mn = Math.min(mn, x[off + i]);
            mx = Math.max(mx, x[off + i]);
        }
        mn *= f;
        mx *= f;
        double[] out = new double[len];
        if (spec.symmetric()) {
            int qmax = (1 << (spec.bits() - 1)) - 1;
            double s = Math.max(Math.abs(mn), Math.abs(mx)) / qmax;
            for (int i = 0; i < len; i++) out[i] = Math.max(-qmax - 1, Math.min(qmax, Math.rint(x[off + i] / s))) * s;
        } else {
            int qmax = spec.bitBalance() ? 1 << spec.bits() : (1 << spec.bits()) - 1;
            double s = (mx - mn) / qmax, z = Math.rint(-mn / s);
            for (int i = 0; i < len; i++) out[i] = (Math.max(0, Math.min(qmax, Math.rint(x[off + i] / s) + z)) - z) * s;
        }
        return out;
    }

    private static double sigmoid(double v) {
        return 1 / (1 + Math.exp(-v));
    }

    @Test
    void roundToNearestErrorIsAtMostHalfAStep() {
        Var x = GradCheck.input(rnd, 9, 33, 1);
        QuantSpec spec = QuantSpec.asymmetric(4, Granularity.PER_ROW);
        double[] y = FakeQuant.apply(Tape.fp64(), x, spec, null).value;
        for (int r = 0; r < 9; r++) {
            double mn = Double.MAX_VALUE, mx = -Double.MAX_VALUE;
            for (int c = 0; c < 33; c++) {
                mn = Math.min(mn, x.value[r * 33 + c]);
                mx = Math.max(mx, x.value[r * 33 + c]);
            }
            double step = (mx - mn) / 15;
            for (int c = 0; c < 33; c++) assertTrue(Math.abs(y[r * 33 + c] - x.value[r * 33 + c]) <= step * 0.5 + 1e-12);
        }
    }

    @Test
    void steGradientsWithLearnableClipping() {
        long seed = 100;
        for (QuantSpec spec : SPECS) {
            Var x = GradCheck.input(rnd, 5, 15, 1);
            for (int count : new int[] {spec.groupCount(5, 15), 1}) {
                ClipFactors clip = new ClipFactors("c", count, 0.7);
                // perturb the logits so the pairs differ
                for (int i = 0; i < clip.param().var().value.length; i++) clip.param().var().value[i] += 0.3 * rnd.nextGaussian();
                GradCheck.FrozenRounding frozen = new GradCheck.FrozenRounding(x.value.length, spec);
                GradCheck.check(spec + " clip pairs " + count, List.of(x, clip.param().var()),
                        t -> FakeQuant.apply(t, x, spec, clip, frozen), seed++);
            }
        }
    }

    @Test
    void steWithoutClippingPassesGradientInsideTheRangeOnly() {
        Var x = GradCheck.input(rnd, 3, 8, 1);
        x.value[5] = 50; // an outlier sets the range of row 0; clipped below makes others clamp
        ClipFactors clip = new ClipFactors("c", 3, -3); // σ(-3) = 0.047: most of row 0 is clamped
        Tape t = Tape.fp64();
        Var y = FakeQuant.apply(t, x, QuantSpec.asymmetric(4, Granularity.PER_ROW), clip);
        double[] ones = new double[y.value.length];
        java.util.Arrays.fill(ones, 1);
        t.backward(GradCheck.weighted(t, y, ones));
        double[] g = x.grad();
        double hi = sigmoid(-3) * 50;
        for (int c = 0; c < 8; c++) {
            if (c != 5 && x.value[c] < hi && y.value[c] == x.value[c]) continue;
            if (c != 5 && x.value[c] > hi + 1e-9 && c != argMin(x.value, 0, 8)) assertEquals(0.0, g[c], 0.0, "clamped element " + c);
        }
        assertTrue(Math.abs(g[5]) > 0, "the max element receives the range gradient");
    }

    private static int argMin(double[] v, int off, int len) {
        int a = off;
        for (int i = off; i < off + len; i++) if (v[i] < v[a]) a = i;
        return a;
    }

    @Test
    void badInput() {
        Var x = GradCheck.input(rnd, 2, 6, 1);
        x.value[3] = Double.NaN;
        assertThrows(IllegalArgumentException.class, () -> FakeQuant.apply(Tape.fp64(), x, QuantSpec.symmetric(8, Granularity.PER_ROW), null));
        Var ok = GradCheck.input(rnd, 2, 6, 1);
        assertThrows(IllegalArgumentException.class,
                () -> FakeQuant.apply(Tape.fp64(), ok, QuantSpec.symmetric(8, Granularity.PER_ROW), new ClipFactors("c", 3, 4)));
        assertThrows(IllegalArgumentException.class, () -> FakeQuant.apply(Tape.fp64(), ok, QuantSpec.grouped(4, false, 4), null));
        assertThrows(IllegalArgumentException.class, () -> new QuantSpec(4, true, Granularity.PER_COLUMN, 0, false));
        assertThrows(IllegalArgumentException.class, () -> QuantSpec.symmetric(1, Granularity.PER_ROW));
        assertThrows(IllegalArgumentException.class, () -> new QuantSpec(4, false, Granularity.PER_ROW, 0, true));
        assertThrows(IllegalArgumentException.class, () -> new QuantSpec(4, false, Granularity.PER_ROW, 8, false));
    }
}
