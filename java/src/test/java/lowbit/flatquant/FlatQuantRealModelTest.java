package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import lowbit.calibrate.BlockHooks;
import lowbit.calibrate.BlockReport;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.CalibrationListener;
import lowbit.calibrate.CalibrationOptions;
import lowbit.calibrate.CalibrationResult;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.LwcMethod;
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
 * FlatQuant W4A4 calibration on the real model (skipped when it is unavailable), reduced: blocks
 * 0-1, 6 + 2 held-out sequences of 32 calibration tokens, 3 epochs, batch 2, the authors' method
 * settings. On the held-out sequences each calibrated block's output MSE against the FP block is
 * below round-to-nearest's with the same quantizers (symmetric per-channel W4, per-token A4). The
 * transforms are rebuilt from the calibration result as the pipeline rebuilds them (seed {@code
 * seed·1000003 + block}, {@link BlockTransforms#load}): their held-out loss must equal the one the
 * calibration reported (exactly for block 0, whose inputs are the embeddings), which checks that rebuild.
 */
class FlatQuantRealModelTest {
    private static final int SAMPLES = 6, HELD_OUT = 2, SEQ = 32, BLOCKS = 2;
    private static final long SEED = 5;

    @Test
    void flatQuantBeatsRoundToNearestAtW4A4(@TempDir Path dir) throws IOException {
        GgufFile g = RealModelFixture.gguf(); // skips when the model is unavailable
        Workspace ws = Workspace.open(null);
        LlamaConfig c = LlamaConfig.fromGguf(g);
        QuantScheme scheme = QuantScheme.w4a4();
        CalibrationOptions o = new CalibrationOptions(SAMPLES, HELD_OUT, SEQ, 3, 2, BLOCKS, false, 1e-3, SEED, false);
        CalibrationResult r = BlockwiseCalibration.run(ws, FlatQuantMethod.authors(scheme), o, dir, CalibrationListener.NONE);

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
            BlockHooks rtn = new LwcMethod(scheme.weights(), scheme.activations(), false, 1e-2).prepare(b, block, null, 0).hooks();
            BlockTransforms t = new BlockTransforms("blk." + b + ".", block, null, scheme, BlockTransforms.DEFAULT_ALPHA, lowbit.calibrate.BlockwiseCalibration.blockSeed(SEED, b));
            t.load(r.params());
            BlockHooks fq = FlatQuantHooks.calibration(t, scheme);
            double errRtn = mse(block.forward(Tape.fp32(), in, SEQ, rtn).output().value(), fp.value());
            double errFq = mse(block.forward(Tape.fp32(), in, SEQ, fq).output().value(), fp.value());
            BlockReport report = r.reports().get(b);
            System.out.printf("block %d held-out output MSE at W4A4: RTN %.4e, FlatQuant %.4e (calibration reported %.4e)%n", b, errRtn, errFq,
                    report.heldOutFinalLoss());
            // block 0 reads the embeddings exactly as the calibration did (on a GPU host the engine's large products run
            // on cuBLAS, whose summation order depends on the product's shape: ~1e-8 relative); later blocks read FP
            // outputs the calibration stored in float32 and computed in other batches, which moves the loss by ~1e-4
            double tolerance = b == 0 ? 1e-6 : 1e-3;
            assertEquals(report.heldOutFinalLoss(), errFq, tolerance * report.heldOutFinalLoss(), "rebuilt transforms differ from the calibrated ones");
            assertTrue(errFq < 0.5 * errRtn, "block " + b + ": FlatQuant " + errFq + " vs RTN " + errRtn);
            x = fp.value();
        }
    }

    private static double mse(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
        return s / a.length;
    }
}
