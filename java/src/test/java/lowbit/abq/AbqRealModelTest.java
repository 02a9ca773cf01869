package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import lowbit.calibrate.BlockHooks;
import lowbit.calibrate.BlockReport;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.CalibrationListener;
import lowbit.calibrate.CalibrationOptions;
import lowbit.calibrate.CalibrationResult;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;
import lowbit.io.GgufFile;
import lowbit.io.RealModelFixture;
import lowbit.model.LlamaConfig;
import lowbit.pipeline.Workspace;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ABQ-LLM calibration with distribution correction on the real model, reduced (blocks 0-1, 6 + 2
 * held-out sequences of 32 calibration tokens, 3 epochs, batch 2), at W4A4: on the held-out
 * sequences the calibrated blocks' output MSE against the FP blocks is below round-to-nearest's at
 * the same quantizers, and training lowered the DC loss of every block. Block inputs are the FP
 * stream (token embeddings, then the FP block 0), as the run trained on FP inputs.
 */
class AbqRealModelTest {
    private static final int SAMPLES = 6, HELD_OUT = 2, SEQ = 32, BLOCKS = 2;

    @Test
    void distributionCorrectionBeatsRoundToNearestAtW4A4(@TempDir Path dir) throws IOException {
        GgufFile g = RealModelFixture.gguf(); // skips when the model is unavailable
        Workspace ws = Workspace.open(null);
        LlamaConfig c = LlamaConfig.fromGguf(g);
        CalibrationOptions o = new CalibrationOptions(SAMPLES, HELD_OUT, SEQ, 3, 2, BLOCKS, false, 1.0, 7, false);
        AbqConfig dc = AbqConfig.authors(4, 4, false, true), rtn = AbqConfig.roundToNearest(4, 4, false);
        CalibrationResult r = BlockwiseCalibration.run(ws, new AbqMethod(dc, c.blockCount()), o, dir, CalibrationListener.NONE);
        for (BlockReport br : r.reports()) {
            assertEquals(3 * o.stepsPerEpoch(), br.steps());
            assertTrue(br.finalLoss() < br.initialLoss(), "block " + br.block() + ": DC loss " + br.initialLoss() + " -> " + br.finalLoss());
        }

        int[] tokens = ws.calibrationTokens((SAMPLES + HELD_OUT) * SEQ);
        float[] embedding = g.readFloats("token_embd.weight");
        int dim = c.dim(), rows = HELD_OUT * SEQ;
        double[] x = new double[rows * dim];
        for (int t = 0; t < rows; t++) {
            int id = tokens[SAMPLES * SEQ + t];
            for (int i = 0; i < dim; i++) x[t * dim + i] = embedding[id * dim + i];
        }
        RotaryEmbedding rope = RotaryEmbedding.of(c, g.hasTensor("rope_freqs.weight") ? g.readFloats("rope_freqs.weight") : null);
        for (int b = 0; b < BLOCKS; b++) {
            LlamaBlock block = LlamaBlock.fromGguf(g, c, b, rope);
            Var in = Var.constant(x, rows, dim);
            Var fp = block.forward(Tape.fp32(), in, SEQ, BlockHooks.NONE).output();
            BlockHooks rtnHooks = AbqMethod.hooks(block, AbqParameters.restore(b, c.blockCount(), block, rtn, Map.of()), rtn, true);
            BlockHooks dcHooks = AbqMethod.hooks(block, AbqParameters.restore(b, c.blockCount(), block, dc, r.params()), dc, true);
            double errRtn = mse(block.forward(Tape.fp32(), in, SEQ, rtnHooks).output().value(), fp.value());
            double errDc = mse(block.forward(Tape.fp32(), in, SEQ, dcHooks).output().value(), fp.value());
            System.out.printf("block %d held-out output MSE at W4A4: RTN %.4e, ABQ with DC %.4e%n", b, errRtn, errDc);
            assertTrue(errDc < errRtn, "block " + b + ": ABQ with DC " + errDc + " vs RTN " + errRtn);
            x = fp.value();
        }
    }

    private static double mse(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
        return s / a.length;
    }
}
