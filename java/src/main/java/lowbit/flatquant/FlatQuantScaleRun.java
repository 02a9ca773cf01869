package lowbit.flatquant;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import lowbit.calibrate.BlockReport;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.CalibrationInterruptedException;
import lowbit.calibrate.CalibrationListener;
import lowbit.calibrate.CalibrationOptions;
import lowbit.pipeline.Workspace;

/**
 * How long FlatQuant's own calibration recipe (128 × 2048 tokens, 15 epochs, batch 4, W4A4) takes
 * on this machine, and how much memory it needs, when the whole run does not fit the time at hand:
 * the authors' recipe on the first blocks, stopped after a wall-clock limit, every optimizer step
 * timed. Prints one line per step (elapsed time, loss, heap in use, the process's peak resident set)
 * and a projection of the 30-block wall time from the measured per-step time and the per-block setup
 * time (collecting the block's FP inputs and targets).
 *
 * <pre>
 *   java -cp ... lowbit.flatquant.FlatQuantScaleRun OUT_DIR MAX_SECONDS [BLOCKS [SAMPLES SEQ_LEN EPOCHS BATCH]]
 * </pre>
 * The model is the default one ({@code $LOWBIT_CACHE} or {@code ~/.cache/lowbit}).
 */
public final class FlatQuantScaleRun {
    private FlatQuantScaleRun() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 2 && args.length != 3 && args.length != 7) {
            System.err.println("usage: FlatQuantScaleRun OUT_DIR MAX_SECONDS [BLOCKS [SAMPLES SEQ_LEN EPOCHS BATCH]]");
            System.exit(2);
        }
        Path out = Path.of(args[0]);
        double maxSeconds = Double.parseDouble(args[1]);
        int blocks = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        CalibrationOptions d = CalibrationOptions.flatQuantDefaults(blocks);
        CalibrationOptions o = args.length == 7
                ? new CalibrationOptions(Integer.parseInt(args[3]), 0, Integer.parseInt(args[4]), Integer.parseInt(args[5]), Integer.parseInt(args[6]), blocks,
                        false, d.lrFloor(), 0, false)
                : new CalibrationOptions(d.samples(), 0, d.seqLen(), d.epochs(), d.batchSize(), blocks, false, d.lrFloor(), 0, false);
        Files.createDirectories(out);
        int stepsPerEpoch = (o.samples() + o.batchSize() - 1) / o.batchSize();
        long stepsPerBlock = (long) stepsPerEpoch * o.epochs();
        System.out.printf(Locale.ROOT, "options %s: %d steps per block; %d cores, max heap %d MiB%n", o, stepsPerBlock,
                Runtime.getRuntime().availableProcessors(), Runtime.getRuntime().maxMemory() >> 20);
        long t0 = System.nanoTime();
        Timing timing = new Timing(t0, maxSeconds);
        Workspace ws = Workspace.open(null);
        String outcome;
        try {
            BlockwiseCalibration.run(ws, FlatQuantMethod.authors(QuantScheme.w4a4()), o, out.resolve("checkpoint"), timing);
            outcome = "completed";
        } catch (CalibrationInterruptedException e) {
            outcome = "stopped at the time limit";
        }
        double total = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "%s after %.1f s: %d steps timed, %d blocks done; peak RSS %d MiB, peak heap %d MiB%n", outcome, total,
                timing.steps, timing.blocksDone, peakRssKib() >> 10, peakHeapBytes() >> 20);
        if (timing.steps > 1) {
            double step = timing.steadyStepSeconds();
            double setup = timing.firstStepAt - timing.runStart; // load, tokenize, collect block 0's FP inputs and targets
            double projected = 30 * (setup + step * stepsPerBlock);
            System.out.printf(Locale.ROOT, "steady step %.2f s (median of steps 2..%d); setup before the first step %.1f s%n", step, timing.steps, setup);
            System.out.printf(Locale.ROOT, "projection, 30 blocks x %d steps: %.0f s = %.1f h (setup counted once per block)%n", stepsPerBlock, projected,
                    projected / 3600);
        }
    }

    /** Times steps; interrupts the calibrating thread once the limit has passed (the run stops before its next step). */
    private static final class Timing implements CalibrationListener {
        final long start;
        final double maxSeconds;
        final double runStart = 0;
        double firstStepAt = Double.NaN;
        double last;
        final double[] stepSeconds = new double[100_000];
        int steps;
        int blocksDone;

        Timing(long start, double maxSeconds) {
            this.start = start;
            this.maxSeconds = maxSeconds;
        }

        @Override
        public void onStep(int block, int epoch, int step, double loss) {
            double now = (System.nanoTime() - start) / 1e9;
            if (steps == 0) {
                firstStepAt = now; // end of the first step: its time counts as setup-free below
                last = now;
            }
            if (steps < stepSeconds.length) stepSeconds[steps] = now - last;
            steps++;
            last = now;
            Runtime rt = Runtime.getRuntime();
            System.out.printf(Locale.ROOT, "block %d epoch %d step %d: loss %.5e, %.1f s, step %.2f s, heap %d MiB, peak RSS %d MiB%n", block, epoch, step, loss,
                    now, stepSeconds[Math.min(steps, stepSeconds.length) - 1], (rt.totalMemory() - rt.freeMemory()) >> 20, peakRssKib() >> 10);
            if (now > maxSeconds) Thread.currentThread().interrupt();
        }

        @Override
        public void onBlockDone(BlockReport report) {
            blocksDone++;
            System.out.printf(Locale.ROOT, "block done: %s%n", report);
        }

        /** Median of the step times after the first (the first includes warm-up and the end of setup). */
        double steadyStepSeconds() {
            int n = Math.min(steps, stepSeconds.length) - 1;
            double[] s = java.util.Arrays.copyOfRange(stepSeconds, 1, 1 + n);
            java.util.Arrays.sort(s);
            return s[n / 2];
        }
    }

    /** VmHWM of this process (KiB), 0 where /proc is not there. */
    private static long peakRssKib() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        } catch (IOException | RuntimeException e) {
            return 0;
        }
        return 0;
    }

    private static long peakHeapBytes() {
        long sum = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP && p.getPeakUsage() != null) sum += p.getPeakUsage().getUsed();
        }
        return sum;
    }
}
