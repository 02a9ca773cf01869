package lowbit.calibrate;

import java.io.PrintStream;
import java.util.Locale;

/** Observes a calibration run (loss curves, tests that interrupt a run). Called on the calibrating thread. */
public interface CalibrationListener {
    CalibrationListener NONE = new CalibrationListener() {};

    /** After each optimizer step ({@code step} counts within the block from 0). */
    default void onStep(int block, int epoch, int step, double loss) {}

    /** After a block's checkpoint has been written. */
    default void onBlockDone(BlockReport report) {}

    /**
     * A line per finished block on {@code log} ({@code "<label> block N: loss a -> b (steps, seconds)"}),
     * or {@link #NONE} when {@code log} is null.
     */
    static CalibrationListener blockLog(PrintStream log, String label) {
        if (log == null) return NONE;
        return new CalibrationListener() {
            @Override
            public void onBlockDone(BlockReport report) {
                log.printf(Locale.ROOT, "%s block %d: loss %.4e -> %.4e (%d steps, %.1f s)%n", label, report.block(),
                        report.initialLoss(), report.finalLoss(), report.steps(), report.seconds());
            }
        };
    }
}
