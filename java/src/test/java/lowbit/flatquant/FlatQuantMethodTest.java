package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import lowbit.calibrate.AdamW;
import lowbit.calibrate.BlockHooks;
import lowbit.calibrate.BlockPass;
import lowbit.calibrate.BlockSetup;
import lowbit.calibrate.CosineSchedule;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Losses;
import lowbit.calibrate.Param;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/** The method's setup trains: the normalized loss reports the MSE with a 1/MSE gradient, and W4A4 block MSE falls. */
class FlatQuantMethodTest {
    private static final LlamaConfig CONFIG = new LlamaConfig(1, 16, 24, 4, 2, 4, 4, 10000, 1, 1e-5f, 64, 100);

    @Test
    void normalizedLossKeepsTheValueAndScalesTheGradient() {
        Random rnd = new Random(1);
        Param p = new Param("p", TestBlocks.gaussian(rnd, 6, 1), 2, 3);
        Var target = Var.constant(TestBlocks.gaussian(rnd, 6, 1), 2, 3);
        Tape t1 = Tape.fp64();
        Var mse = Losses.mse(t1, p.var(), target);
        t1.backward(mse);
        double[] g = p.gradient();
        p.zeroGrad();
        Tape t2 = Tape.fp64();
        Var n = NormalizedMse.INSTANCE.loss(t2, new BlockPass(p.var(), null), target);
        t2.backward(n);
        assertEquals(mse.scalar(), n.scalar(), 1e-15 * Math.max(1, mse.scalar()));
        double[] gn = p.gradient();
        for (int i = 0; i < g.length; i++) assertEquals(g[i] / mse.scalar(), gn[i], 1e-12 * Math.abs(g[i] / mse.scalar()) + 1e-15);
    }

    @Test
    void calibrationLowersTheW4A4BlockError() {
        Random rnd = new Random(2);
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of());
        double[] xv = TestBlocks.gaussian(rnd, 4 * 8 * 16, 1);
        for (int r = 0; r < 32; r++) xv[r * 16 + 3] *= 20; // an outlier channel
        Var x = Var.constant(xv, 32, 16);
        Var target = Var.constant(block.forward(Tape.fp32(), x, 8, BlockHooks.NONE).output().value(), 32, 16);
        BlockSetup setup = FlatQuantMethod.authors(QuantScheme.w4a4kv4(4)).prepare(0, block, null, 7);
        double before = Losses.mse(Tape.fp32(), block.forward(Tape.fp32(), x, 8, setup.hooks()).output(), target).scalar();
        AdamW opt = new AdamW(setup.groups());
        CosineSchedule schedule = new CosineSchedule(60, 1e-3);
        for (int step = 0; step < 60; step++) {
            opt.zeroGrad();
            Tape tape = Tape.fp32();
            tape.backward(setup.loss().loss(tape, block.forward(tape, x, 8, setup.hooks()), target));
            opt.step(schedule.factor(step));
        }
        double after = Losses.mse(Tape.fp32(), block.forward(Tape.fp32(), x, 8, setup.hooks()).output(), target).scalar();
        assertTrue(after < 0.8 * before, "block MSE " + before + " -> " + after);
    }
}
