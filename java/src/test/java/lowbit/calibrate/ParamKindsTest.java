package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The learnable parameter kinds: exactness of the equivalences (FP64) and gradients through them. */
class ParamKindsTest {
    private final Random rnd = new Random(3);

    @Test
    void decompositionRule() {
        assertArrayEquals(new int[] {24, 24}, KroneckerTransform.decompose(576));
        assertArrayEquals(new int[] {32, 48}, KroneckerTransform.decompose(1536));
        assertArrayEquals(new int[] {64, 64}, KroneckerTransform.decompose(4096));
        assertArrayEquals(new int[] {112, 128}, KroneckerTransform.decompose(14336));
        assertArrayEquals(new int[] {86, 128}, KroneckerTransform.decompose(11008));
        assertArrayEquals(new int[] {1, 13}, KroneckerTransform.decompose(13));
        assertThrows(IllegalArgumentException.class, () -> KroneckerTransform.decompose(0));
        assertTimeoutPreemptively(java.time.Duration.ofSeconds(5),
                () -> assertThrows(IllegalArgumentException.class, () -> KroneckerTransform.decompose(578)));
        assertTimeoutPreemptively(java.time.Duration.ofSeconds(5),
                () -> assertThrows(IllegalArgumentException.class, () -> KroneckerTransform.decompose(6)));
    }

    @Test
    void cayleyIsOrthogonal() {
        Var r = GradCheck.input(rnd, 9, 9, 1);
        double[] q = Cayley.apply(Tape.fp64(), r).value;
        for (int i = 0; i < 9; i++) {
            for (int j = 0; j < 9; j++) {
                double dot = 0;
                for (int k = 0; k < 9; k++) dot += q[k * 9 + i] * q[k * 9 + j];
                assertEquals(i == j ? 1 : 0, dot, 1e-12);
            }
        }
    }

    @Test
    void kroneckerOpEqualsTheExplicitProduct() {
        Var x = GradCheck.input(rnd, 4, 12, 1), a = GradCheck.input(rnd, 3, 3, 1), b = GradCheck.input(rnd, 4, 4, 1);
        double[] y = Kronecker.apply(Tape.fp64(), x, a, b).value;
        for (int r = 0; r < 4; r++) {
            for (int col = 0; col < 12; col++) {
                double s = 0;
                for (int row = 0; row < 12; row++) {
                    s += x.value[r * 12 + row] * a.value[(row / 4) * 3 + col / 4] * b.value[(row % 4) * 4 + col % 4];
                }
                assertEquals(s, y[r * 12 + col], 1e-12);
            }
        }
    }

    /** (x·P)·(W·P⁻ᵀ)ᵀ = x·Wᵀ, and likewise for the channel scale, to 1e-10 relative in FP64. */
    @Test
    void transformsPreserveTheLinearLayer() {
        int n = 15, out = 7;
        KroneckerTransform tr = new KroneckerTransform("t", n, 42);
        for (Param p : tr.params()) {
            double[] v = p.values();
            for (int i = 0; i < v.length; i++) v[i] += p.name().endsWith("sigma") ? 0.5 * rnd.nextDouble() : 0.3 * rnd.nextGaussian();
            p.set(v);
        }
        ChannelScale s = new ChannelScale("s", positive(n));
        Var x = GradCheck.input(rnd, 6, n, 1), w = GradCheck.input(rnd, out, n, 1);
        Tape t = Tape.fp64();
        KroneckerTransform.Bound bound = tr.bind(t);
        double[] ref = Linear.apply(t, x, w, null).value;
        double[] viaKron = Linear.apply(t, bound.activations(x), bound.weight(w), null).value;
        double[] viaScale = Linear.apply(t, s.activations(t, x), s.weight(t, w), null).value;
        double[] both = Linear.apply(t, bound.activations(s.activations(t, x)), bound.weight(s.weight(t, w)), null).value;
        for (double[] got : new double[][] {viaKron, viaScale, both}) {
            double err = 0, norm = 0;
            for (int i = 0; i < ref.length; i++) {
                err += (got[i] - ref[i]) * (got[i] - ref[i]);
                norm += ref[i] * ref[i];
            }
            assertTrue(Math.sqrt(err / norm) < 1e-10, "relative error " + Math.sqrt(err / norm));
        }
    }

    @Test
    void gradientsThroughTheTransformParameters() {
        int n = 15;
        KroneckerTransform tr = new KroneckerTransform("t", n, 7);
        for (Param p : tr.params()) {
            double[] v = p.values();
            for (int i = 0; i < v.length; i++) v[i] += 0.2 * rnd.nextGaussian();
            p.set(v);
        }
        ChannelScale s = new ChannelScale("s", positive(n));
        LowRankCompensation lr = new LowRankCompensation("lr", 5, n);
        lr.left().set(GradCheck.input(rnd, 5, 1, 0.1).value);
        Var x = GradCheck.input(rnd, 4, n, 1), w = GradCheck.input(rnd, 5, n, 1);
        List<Var> vars = new ArrayList<>();
        for (Param p : tr.params()) vars.add(p.var());
        vars.add(s.param().var());
        vars.add(lr.left().var());
        vars.add(lr.right().var());
        // the transforms cancel in x·Wᵀ, so quantize both sides (rounding frozen) to make them matter
        QuantSpec act = QuantSpec.asymmetric(4, lowbit.Granularity.PER_ROW), wgt = QuantSpec.symmetric(4, lowbit.Granularity.PER_ROW);
        GradCheck.FrozenRounding ra = new GradCheck.FrozenRounding(4 * n, act), rw = new GradCheck.FrozenRounding(5 * n, wgt);
        GradCheck.check("transform chain", vars, t -> {
            KroneckerTransform.Bound b = tr.bind(t);
            Var xa = FakeQuant.apply(t, b.activations(s.activations(t, x)), act, null, ra);
            Var wa = FakeQuant.apply(t, b.weight(s.weight(t, lr.apply(t, w))), wgt, null, rw);
            return Linear.apply(t, xa, wa, null);
        }, 31);
    }

    @Test
    void initialValues() {
        LowRankCompensation lr = new LowRankCompensation("lr", 3, 4);
        Var w = GradCheck.input(rnd, 3, 4, 1);
        assertArrayEquals(w.value, lr.apply(Tape.fp64(), w).value, 0.0);
        ClipFactors c = new ClipFactors("c", 2, ClipFactors.DEFAULT_INIT);
        assertEquals(1 / (1 + Math.exp(-4.0)), c.factors()[3], 1e-15);
        double[] sq = ChannelScale.smoothQuant(new double[] {4, 0, 9}, new double[] {1, 1, 0.25}, 0.5);
        assertArrayEquals(new double[] {2, 1, 6}, sq, 1e-12);
        assertThrows(IllegalArgumentException.class, () -> new ChannelScale("s", new double[] {1, -1}));
        assertThrows(IllegalArgumentException.class, () -> new ClipFactors("c", 0, 4));
    }

    private double[] positive(int n) {
        double[] s = new double[n];
        for (int i = 0; i < n; i++) s[i] = 0.5 + rnd.nextDouble();
        return s;
    }
}
