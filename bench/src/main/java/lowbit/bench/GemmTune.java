package lowbit.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import lowbit.Backend;
import lowbit.Context;
import lowbit.Lowbit;

/**
 * The GEMM autotuner: times every compiled W8A8 kernel configuration on this device for each
 * (M, K, N) and writes the dispatch table (format: {@code native/src/gemm_table.h}) with the
 * fastest one per (M bucket, K, N). An entry's m_max is the M it was tuned at; at run time a shape
 * takes the entry with the smallest m_max at or above its M, so tune at the bucket edges you use.
 *
 * <pre>
 * java -cp ... lowbit.bench.GemmTune [--shapes 4096x4096,4096x14336,...] [--m 1,16,64,...] [--out table.txt]
 * </pre>
 * Shapes are KxN (K input features, N output features). Use the table with {@code
 * LOWBIT_GEMM_TUNING=table.txt}, {@link Context#loadGemmTuning(String)}, or by committing it as
 * {@code native/tuning/sm90_w8a8.txt} (compiled in).
 */
public final class GemmTune {
    private GemmTune() {}

    public static void main(String[] args) throws Exception {
        int[][] shapes = GemmBench.DEFAULT_SHAPES;
        int[] ms = GemmBench.DEFAULT_M;
        Path out = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes": shapes = GemmBench.parseShapes(args[++i]); break;
                case "--m": ms = GemmBench.parseInts(args[++i]); break;
                case "--out": out = Path.of(args[++i]); break;
                default: throw new IllegalArgumentException("unknown option " + args[i]
                        + " (use --shapes KxN,..., --m M,..., --out FILE)");
            }
        }
        List<String> configs = Lowbit.gemmConfigs();
        if (Lowbit.cudaDeviceCount() == 0 || configs.isEmpty()) {
            System.out.println("GemmTune: needs a CUDA device and an sm_90a build (" + Lowbit.buildInfo() + ")");
            return;
        }
        String table = tune(shapes, ms, configs);
        System.out.print(table);
        if (out != null) {
            Files.writeString(out, table, StandardCharsets.UTF_8);
            System.out.println("# written to " + out);
        }
    }

    static String tune(int[][] shapes, int[] ms, List<String> configs) throws Exception {
        StringBuilder t = new StringBuilder();
        t.append("# lowbit SM90 W8A8 GEMM dispatch table (format: native/src/gemm_table.h).\n");
        t.append("# Written by lowbit.bench.GemmTune; compiled into liblowbit; LOWBIT_GEMM_TUNING=<file> replaces it.\n");
        t.append("# Per entry: the fastest configuration, then the median us per launch of each configuration\n");
        t.append("# (F16 out, per-token x per-channel scales, back-to-back launches): ").append(String.join(" ", configs))
                .append('\n');
        t.append("lowbit-gemm-tuning 1\narch sm90\n");
        try (Context gpu = Context.open(Backend.CUDA)) {
            t.append("device ").append(GemmBench.deviceName()).append('\n');
            t.append("# tuned ").append(java.time.LocalDate.now()).append(", ").append(Lowbit.buildInfo()).append('\n');
            t.append(String.format(Locale.ROOT, "# %-6s %6s %6s  %-24s %s%n", "m_max", "k", "n", "config", "us"));
            for (int[] s : shapes) {
                try (GemmProblem.Weights w = new GemmProblem.Weights(gpu, s[1], s[0], 7)) {
                    for (int m : ms) {
                        try (GemmProblem p = new GemmProblem(gpu, w, m, 11)) {
                            double[] us = new double[configs.size()];
                            int best = 0;
                            for (int c = 0; c < configs.size(); c++) {
                                String config = configs.get(c);
                                us[c] = GpuTimer.time(gpu, i -> p.w8a8(gpu, config, i)) * 1e6;
                                if (us[c] < us[best]) {
                                    best = c;
                                }
                            }
                            StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "%8d %6d %6d  %-24s",
                                    m, s[0], s[1], configs.get(best)));
                            for (double u : us) {
                                line.append(String.format(Locale.ROOT, " %.1f", u));
                            }
                            t.append(line).append('\n');
                            System.err.println(line);
                        }
                    }
                }
            }
        }
        return t.toString();
    }

}
