package lowbit.calibrate;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import lowbit.pipeline.Workspace;

/**
 * The engine's evidence run: RTN and LWC at W4A8 ({@link LwcMethod#w4a8}) over the first blocks of
 * the default model, same options. Writes {@code loss-curve.csv} (block, epoch, step, loss of each
 * LWC step), its plot {@code loss-curve.png} ({@link LossCurvePlot}) and {@code summary.csv} (per
 * block: RTN and LWC losses on training and held-out sequences) into the output directory and
 * prints the table, wall times, peak heap and the GEMM backend ({@code -Dlowbit.gemm=java} forces
 * the Java kernel, for before/after comparisons).
 *
 * <pre>
 *   java -cp ... lowbit.calibrate.CalibrationBench OUT_DIR BLOCKS SAMPLES HELD_OUT SEQ_LEN EPOCHS BATCH
 * </pre>
 */
public final class CalibrationBench {
    private CalibrationBench() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 7) {
            System.err.println("usage: CalibrationBench OUT_DIR BLOCKS SAMPLES HELD_OUT SEQ_LEN EPOCHS BATCH");
            System.exit(2);
        }
        Path out = Path.of(args[0]);
        int[] a = new int[6];
        for (int i = 0; i < 6; i++) a[i] = Integer.parseInt(args[i + 1]);
        CalibrationOptions o = new CalibrationOptions(a[1], a[2], a[3], a[4], a[5], a[0], false, 1e-3, 0, true);
        Files.createDirectories(out);
        Workspace ws = Workspace.open(null);
        long t0 = System.nanoTime();
        CalibrationResult rtn = BlockwiseCalibration.run(ws, LwcMethod.w4a8(false), o, out.resolve("run-rtn"), CalibrationListener.NONE);
        double rtnSeconds = (System.nanoTime() - t0) / 1e9;
        CalibrationResult lwc;
        long t1 = System.nanoTime();
        try (PrintWriter curve = new PrintWriter(Files.newBufferedWriter(out.resolve("loss-curve.csv")))) {
            curve.println("block,epoch,step,loss");
            lwc = BlockwiseCalibration.run(ws, LwcMethod.w4a8(true), o, out.resolve("run-lwc"), new CalibrationListener() {
                @Override
                public void onStep(int block, int epoch, int step, double loss) {
                    curve.printf(Locale.ROOT, "%d,%d,%d,%.6e%n", block, epoch, step, loss);
                }
            });
        }
        double lwcSeconds = (System.nanoTime() - t1) / 1e9;
        if (o.epochs() > 0) LossCurvePlot.write(out.resolve("loss-curve.csv"), out.resolve("loss-curve.png"),
                String.format(Locale.ROOT, "LWC W4A8 block-output loss per step (%d blocks, %d x %d tokens, %d epochs, batch %d)", o.blocks(), o.samples(), o.seqLen(),
                        o.epochs(), o.batchSize()));
        try (PrintWriter s = new PrintWriter(Files.newBufferedWriter(out.resolve("summary.csv")))) {
            s.println("block,rtn_train,lwc_init_train,lwc_train,rtn_heldout,lwc_heldout,lwc_seconds");
            System.out.printf(Locale.ROOT, "%-5s %12s %12s %12s %12s %12s %8s%n", "block", "RTN train", "LWC init", "LWC train", "RTN held", "LWC held", "s");
            for (int b = 0; b < o.blocks(); b++) {
                BlockReport r = rtn.reports().get(b), l = lwc.reports().get(b);
                s.printf(Locale.ROOT, "%d,%.6e,%.6e,%.6e,%.6e,%.6e,%.1f%n", b, r.finalLoss(), l.initialLoss(), l.finalLoss(), r.heldOutFinalLoss(), l.heldOutFinalLoss(), l.seconds());
                System.out.printf(Locale.ROOT, "%-5d %12.4e %12.4e %12.4e %12.4e %12.4e %8.1f%n", b, r.finalLoss(), l.initialLoss(), l.finalLoss(),
                        r.heldOutFinalLoss(), l.heldOutFinalLoss(), l.seconds());
            }
        }
        long peak = 0;
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            if (pool.getType() == MemoryType.HEAP) peak += pool.getPeakUsage().getUsed();
        }
        System.out.printf(Locale.ROOT, "options %s%nRTN %.1f s, LWC %.1f s, peak heap (sum of pool peaks) %.0f MiB, %d cores%nGEMM: %s%n", o, rtnSeconds, lwcSeconds,
                peak / 1048576.0, Runtime.getRuntime().availableProcessors(), Gemm.backend());
    }
}
