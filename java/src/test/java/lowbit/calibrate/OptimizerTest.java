package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** AdamW against the PyTorch update written out step by step; the cosine schedule's values. */
class OptimizerTest {
    @Test
    void adamWMatchesTheReferenceUpdateWithTwoGroups() {
        Param a = new Param("a", new double[] {1.0, -2.0}, 1, 2);
        Param b = new Param("b", new double[] {0.5}, 1, 1);
        AdamW opt = new AdamW(List.of(new ParamGroup("a", 0.1, 0.01, List.of(a)), new ParamGroup("b", 0.05, 0.0, List.of(b))));
        double[][] grads = {{0.3, -1.0}, {-0.2, 0.5}, {0.1, 0.1}};
        double[] gb = {2.0, -1.0, 0.5};
        double[] pa = {1.0, -2.0}, ma = new double[2], va = new double[2];
        double pb = 0.5, mb = 0, vb = 0;
        double[] factors = {1.0, 0.7, 0.2};
        for (int t = 1; t <= 3; t++) {
            opt.zeroGrad();
            a.var().gradArray()[0] = grads[t - 1][0];
            a.var().gradArray()[1] = grads[t - 1][1];
            b.var().gradArray()[0] = gb[t - 1];
            opt.step(factors[t - 1]);
            double bc1 = 1 - Math.pow(0.9, t), bc2 = 1 - Math.pow(0.999, t);
            for (int i = 0; i < 2; i++) {
                double lr = 0.1 * factors[t - 1];
                pa[i] -= lr * 0.01 * pa[i];
                ma[i] = 0.9 * ma[i] + 0.1 * grads[t - 1][i];
                va[i] = 0.999 * va[i] + 0.001 * grads[t - 1][i] * grads[t - 1][i];
                pa[i] -= lr / bc1 * ma[i] / (Math.sqrt(va[i]) / Math.sqrt(bc2) + 1e-8);
                assertEquals(pa[i], a.values()[i], 1e-15);
            }
            double lr = 0.05 * factors[t - 1];
            mb = 0.9 * mb + 0.1 * gb[t - 1];
            vb = 0.999 * vb + 0.001 * gb[t - 1] * gb[t - 1];
            pb -= lr / bc1 * mb / (Math.sqrt(vb) / Math.sqrt(bc2) + 1e-8);
            assertEquals(pb, b.values()[0], 1e-15);
        }
        // first step of Adam moves each coordinate by lr·sign(g): the reference above must agree
        assertEquals(3, opt.steps());
    }

    @Test
    void firstStepMovesByTheLearningRate() {
        Param p = new Param("p", new double[] {0, 0}, 1, 2);
        AdamW opt = new AdamW(List.of(new ParamGroup("g", 0.01, 0, List.of(p))));
        p.var().gradArray()[0] = 5;
        p.var().gradArray()[1] = -1e-3;
        opt.step(1);
        assertEquals(-0.01, p.values()[0], 1e-9);
        assertEquals(0.01, p.values()[1], 1e-7);
    }

    @Test
    void minimizesAQuadratic() {
        Param p = new Param("p", new double[] {3, -4, 1}, 1, 3);
        AdamW opt = new AdamW(List.of(new ParamGroup("g", 0.1, 0, List.of(p))));
        CosineSchedule sched = new CosineSchedule(400, 1e-3);
        double[] target = {1, 2, -1};
        for (int step = 0; step < 400; step++) {
            opt.zeroGrad();
            Tape t = Tape.fp64();
            t.backward(Losses.mse(t, p.var(), Var.constant(target, 1, 3)));
            opt.step(sched.factor(step));
        }
        for (int i = 0; i < 3; i++) assertEquals(target[i], p.values()[i], 1e-2);
    }

    @Test
    void cosineSchedule() {
        CosineSchedule s = new CosineSchedule(100, 1e-3);
        assertEquals(1.0, s.factor(0), 1e-15);
        assertEquals((1 + 1e-3) / 2, s.factor(50), 1e-15);
        assertEquals(1e-3, s.factor(100), 1e-15);
        assertEquals(1e-3, s.factor(150), 1e-15);
        assertTrue(s.factor(30) > s.factor(31));
        assertThrows(IllegalArgumentException.class, () -> new CosineSchedule(0, 0.1));
        assertThrows(IllegalArgumentException.class, () -> new ParamGroup("g", 0, 0, List.of()));
        Param p = new Param("p", new double[1], 1, 1);
        assertThrows(IllegalArgumentException.class,
                () -> new AdamW(List.of(new ParamGroup("a", 1, 0, List.of(p)), new ParamGroup("b", 1, 0, List.of(p)))));
    }
}
