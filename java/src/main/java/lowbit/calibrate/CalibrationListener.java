package lowbit.calibrate;

/** Observes a calibration run (loss curves, tests that interrupt a run). Called on the calibrating thread. */
public interface CalibrationListener {
    CalibrationListener NONE = new CalibrationListener() {};

    /** After each optimizer step ({@code step} counts within the block from 0). */
    default void onStep(int block, int epoch, int step, double loss) {}

    /** After a block's checkpoint has been written. */
    default void onBlockDone(BlockReport report) {}
}
