package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import lowbit.io.RealModelFixture;
import lowbit.pipeline.Workspace;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The block-by-block pipeline on the real model, reduced (2 blocks, 6 + 2 held-out sequences of 32
 * calibration tokens, 3 epochs, batch 2): LWC at W4A8 lowers every block's output error below RTN
 * on the training and held-out sequences; a run interrupted in block 1 resumes there (block 0 not
 * recomputed) and ends with exactly the parameters and losses of an uninterrupted run; a directory
 * of another run is refused.
 */
class PipelineTest {
    private static final CalibrationOptions OPTIONS = new CalibrationOptions(6, 2, 32, 3, 2, 2, false, 1e-3, 7, false);

    @Test
    void lwcBeatsRtnAndAnInterruptedRunResumesExactly(@TempDir Path dir) throws IOException {
        RealModelFixture.gguf(); // skips when the model is unavailable
        Workspace ws = Workspace.open(null);
        CalibrationResult rtn = BlockwiseCalibration.run(ws, LwcMethod.w4a8(false), OPTIONS, dir.resolve("rtn"), CalibrationListener.NONE);
        CalibrationResult full = BlockwiseCalibration.run(ws, LwcMethod.w4a8(true), OPTIONS, dir.resolve("full"), CalibrationListener.NONE);
        assertEquals(2, full.reports().size());
        for (int b = 0; b < 2; b++) {
            BlockReport r = full.reports().get(b), base = rtn.reports().get(b);
            assertEquals(OPTIONS.epochs() * OPTIONS.stepsPerEpoch(), r.steps());
            assertTrue(r.finalLoss() < base.finalLoss(), "block " + b + ": LWC " + r.finalLoss() + " vs RTN " + base.finalLoss());
            assertTrue(r.heldOutFinalLoss() < base.heldOutFinalLoss(), "block " + b + " held out: LWC " + r.heldOutFinalLoss() + " vs RTN " + base.heldOutFinalLoss());
            assertTrue(r.finalLoss() < r.initialLoss(), "block " + b + " training lowered the loss");
        }
        assertEquals(0, rtn.params().size());
        assertEquals(14, full.params().size()); // 7 clip-factor matrices per block

        Path resumed = dir.resolve("resumed");
        CalibrationListener interrupter = new CalibrationListener() {
            @Override
            public void onStep(int block, int epoch, int step, double loss) {
                if (block == 1 && step == 2) Thread.currentThread().interrupt();
            }
        };
        assertThrows(CalibrationInterruptedException.class, () -> BlockwiseCalibration.run(ws, LwcMethod.w4a8(true), OPTIONS, resumed, interrupter));
        assertTrue(Files.exists(resumed.resolve("block-0.json")) && !Files.exists(resumed.resolve("block-1.json")));
        List<Integer> blocksSeen = new ArrayList<>();
        CalibrationResult second = BlockwiseCalibration.run(ws, LwcMethod.w4a8(true), OPTIONS, resumed, new CalibrationListener() {
            @Override
            public void onStep(int block, int epoch, int step, double loss) {
                if (!blocksSeen.contains(block)) blocksSeen.add(block);
            }
        });
        assertEquals(List.of(1), blocksSeen, "the rerun trains only block 1");
        for (Map.Entry<String, double[]> e : full.params().entrySet()) {
            assertArrayEquals(e.getValue(), second.params().get(e.getKey()), 0.0, e.getKey() + " differs after resuming");
        }
        for (int b = 0; b < 2; b++) {
            assertEquals(full.reports().get(b).finalLoss(), second.reports().get(b).finalLoss(), 0.0);
            assertEquals(full.reports().get(b).epochLosses(), second.reports().get(b).epochLosses());
        }
        CalibrationOptions other = new CalibrationOptions(6, 2, 32, 4, 2, 2, false, 1e-3, 7, false);
        assertThrows(IllegalStateException.class, () -> BlockwiseCalibration.run(ws, LwcMethod.w4a8(true), other, resumed, CalibrationListener.NONE));
    }

    /**
     * With quantized inputs, block 1 trains on block 0's calibrated outputs: its RTN error there is
     * larger than on FP inputs (the error of block 0 adds up), and the quantized stream is kept.
     */
    @Test
    void quantizedInputsCarryTheErrorOfEarlierBlocks(@TempDir Path dir) throws IOException {
        RealModelFixture.gguf();
        Workspace ws = Workspace.open(null);
        CalibrationOptions fp = new CalibrationOptions(2, 0, 16, 1, 2, 2, false, 1e-3, 3, false);
        CalibrationOptions q = new CalibrationOptions(2, 0, 16, 1, 2, 2, true, 1e-3, 3, false);
        CalibrationResult onFp = BlockwiseCalibration.run(ws, LwcMethod.w4a8(false), fp, dir.resolve("fp"), CalibrationListener.NONE);
        CalibrationResult onQ = BlockwiseCalibration.run(ws, LwcMethod.w4a8(false), q, dir.resolve("q"), CalibrationListener.NONE);
        assertEquals(onFp.reports().get(0).initialLoss(), onQ.reports().get(0).initialLoss(), 0.0, "block 0 reads the embeddings either way");
        assertTrue(onQ.reports().get(1).initialLoss() > onFp.reports().get(1).initialLoss(),
                onQ.reports().get(1).initialLoss() + " vs " + onFp.reports().get(1).initialLoss());
        assertTrue(Files.exists(dir.resolve("q").resolve("input-q-2.f32")));
    }
}
