package lowbit.flatquant;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import lowbit.calibrate.BlockMethod;
import lowbit.calibrate.BlockReport;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.CalibrationListener;
import lowbit.calibrate.CalibrationOptions;
import lowbit.calibrate.CalibrationResult;
import lowbit.calibrate.LwcMethod;
import lowbit.pipeline.Workspace;

/**
 * FlatQuant's evidence run on the default model: per scheme (W4A8, W4A4 by default; KV16), RTN and
 * the engine's LWC with the same quantizers ({@link LwcMethod}: symmetric per-channel weights,
 * symmetric per-token activations, lr 1e-2) and FlatQuant ({@link FlatQuantMethod#authors}), same
 * blocks, tokens and options; block output MSE on training and held-out sequences. Writes {@code
 * summary.csv} into the output directory and prints the table and wall times.
 *
 * <pre>
 *   java -cp ... lowbit.flatquant.FlatQuantBench OUT_DIR BLOCKS SAMPLES HELD_OUT SEQ_LEN EPOCHS BATCH [SCHEME,...]
 * </pre>
 */
public final class FlatQuantBench {
    private FlatQuantBench() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 7 && args.length != 8) {
            System.err.println("usage: FlatQuantBench OUT_DIR BLOCKS SAMPLES HELD_OUT SEQ_LEN EPOCHS BATCH [W4A8,W4A4,W8A8,W4A4KV4]");
            System.exit(2);
        }
        Path out = Path.of(args[0]);
        int[] a = new int[6];
        for (int i = 0; i < 6; i++) a[i] = Integer.parseInt(args[i + 1]);
        CalibrationOptions o = new CalibrationOptions(a[1], a[2], a[3], a[4], a[5], a[0], false, 1e-3, 0, false);
        List<String> schemes = List.of((args.length == 8 ? args[7] : "W4A8,W4A4").split(","));
        Files.createDirectories(out);
        Workspace ws = Workspace.open(null);
        try (PrintWriter s = new PrintWriter(Files.newBufferedWriter(out.resolve("summary.csv")))) {
            s.println("scheme,block,rtn_train,rtn_heldout,lwc_train,lwc_heldout,fq_init_train,fq_train,fq_heldout,rtn_s,lwc_s,fq_s");
            for (String name : schemes) {
                QuantScheme q = scheme(name);
                double[] secs = new double[3];
                CalibrationResult[] r = new CalibrationResult[3];
                BlockMethod[] methods = {new LwcMethod(q.weights(), q.activations(), false, 1e-2), new LwcMethod(q.weights(), q.activations(), true, 1e-2),
                    FlatQuantMethod.authors(q)};
                String[] dirs = {"rtn", "lwc", "flatquant"};
                for (int m = 0; m < 3; m++) {
                    long t0 = System.nanoTime();
                    r[m] = BlockwiseCalibration.run(ws, methods[m], o, out.resolve(name + "-" + dirs[m]), CalibrationListener.NONE);
                    secs[m] = (System.nanoTime() - t0) / 1e9;
                }
                System.out.printf(Locale.ROOT, "%s  %-5s %20s %20s %10s %20s%n", name, "block", "RTN train/held", "LWC train/held", "FQ init", "FlatQuant train/held");
                for (int b = 0; b < o.blocks(); b++) {
                    BlockReport rt = r[0].reports().get(b), lw = r[1].reports().get(b), fq = r[2].reports().get(b);
                    s.printf(Locale.ROOT, "%s,%d,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.6e,%.1f,%.1f,%.1f%n", name, b, rt.finalLoss(), rt.heldOutFinalLoss(), lw.finalLoss(),
                            lw.heldOutFinalLoss(), fq.initialLoss(), fq.finalLoss(), fq.heldOutFinalLoss(), secs[0], secs[1], secs[2]);
                    System.out.printf(Locale.ROOT, "%s  %-5d %9.3e/%9.3e %9.3e/%9.3e %10.3e %9.3e/%9.3e%n", name, b, rt.finalLoss(), rt.heldOutFinalLoss(),
                            lw.finalLoss(), lw.heldOutFinalLoss(), fq.initialLoss(), fq.finalLoss(), fq.heldOutFinalLoss());
                }
                System.out.printf(Locale.ROOT, "%s wall time: RTN %.1f s, LWC %.1f s, FlatQuant %.1f s%n", name, secs[0], secs[1], secs[2]);
                s.flush();
            }
        }
        System.out.printf(Locale.ROOT, "options %s, %d cores%n", o, Runtime.getRuntime().availableProcessors());
    }

    static QuantScheme scheme(String name) {
        switch (name) {
            case "W4A8":
                return QuantScheme.w4a8();
            case "W4A4":
                return QuantScheme.w4a4();
            case "W8A8":
                return QuantScheme.w8a8();
            case "W4A4KV4":
                return QuantScheme.w4a4kv4(64);
            default:
                throw new IllegalArgumentException("unknown scheme " + name + " (W4A8, W4A4, W8A8, W4A4KV4)");
        }
    }
}
