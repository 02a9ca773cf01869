package lowbit.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import lowbit.Backend;
import lowbit.Context;
import lowbit.DType;
import lowbit.Lowbit;
import lowbit.Tensor;

/**
 * W8A8 GEMM benchmark: lowbit's fused INT8 GEMM + dequantizing epilogue (F16 out, per-token x
 * per-channel scales; the configuration the dispatch table picks) against cuBLAS FP16 ({@code
 * cublasGemmEx}, FP32 accumulation) on the same device in the same run, over the GEMM issue's
 * shapes. Per cell: median us per launch (back-to-back launches, see {@link GpuTimer}; weights
 * rotated through >= 128 MB so small shapes are not served from L2), TOPS (2·M·N·K / time), the
 * ratio, and for M <= 64 the rate at which the INT8 weights are read against the device copy
 * bandwidth measured in the same run.
 *
 * <pre>
 * java -cp ... lowbit.bench.GemmBench [--shapes KxN,...] [--m 1,16,...] [--table tuning.txt] [--csv out.csv]
 * </pre>
 */
public final class GemmBench {
    static final int[][] DEFAULT_SHAPES = {
        {4096, 4096}, {4096, 14336}, {14336, 4096}, {8192, 8192}, {8192, 28672}, {28672, 8192}
    };
    static final int[] DEFAULT_M = {1, 16, 64, 256, 1024, 2048, 4096, 8192};

    private GemmBench() {}

    public static void main(String[] args) throws Exception {
        int[][] shapes = DEFAULT_SHAPES;
        int[] ms = DEFAULT_M;
        Path table = null;
        Path csv = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes": shapes = parseShapes(args[++i]); break;
                case "--m": ms = parseInts(args[++i]); break;
                case "--table": table = Path.of(args[++i]); break;
                case "--csv": csv = Path.of(args[++i]); break;
                default: throw new IllegalArgumentException("unknown option " + args[i]
                        + " (use --shapes KxN,..., --m M,..., --table FILE, --csv FILE)");
            }
        }
        if (Lowbit.cudaDeviceCount() == 0) {
            System.out.println("GemmBench: no CUDA device (" + Lowbit.buildInfo() + "); nothing to measure");
            return;
        }
        List<String> rows = new ArrayList<>();
        StringBuilder csvText = new StringBuilder("m,k,n,config,lowbit_us,lowbit_tops,cublas_f16_us,cublas_tflops,"
                + "ratio,weight_gbps,copy_gbps\n");
        try (Context gpu = Context.open(Backend.CUDA)) {
            if (table != null) {
                gpu.loadGemmTuning(Files.readString(table, StandardCharsets.UTF_8));
            }
            double copyBw = copyBandwidth(gpu);
            System.out.printf(Locale.ROOT, "GemmBench on %s, %s%ncopy bandwidth (read+write) %.0f GB/s%n",
                    deviceName(), Lowbit.buildInfo(), copyBw / 1e9);
            for (int[] s : shapes) {
                try (GemmProblem.Weights w = new GemmProblem.Weights(gpu, s[1], s[0], 7)) {
                    for (int m : ms) {
                        try (GemmProblem p = new GemmProblem(gpu, w, m, 11)) {
                            double tL = GpuTimer.time(gpu, i -> p.w8a8(gpu, Context.AUTO, i));
                            double tF = GpuTimer.time(gpu, i -> p.f16(gpu, i));
                            double ops = 2.0 * m * s[0] * s[1];
                            double weightBw = (double) s[0] * s[1] / tL;
                            String config = p.dispatched(gpu);
                            rows.add(String.format(Locale.ROOT,
                                    "%5d %6d %6d  %-22s %9.1f %7.0f %9.1f %7.0f %6.2f %s", m, s[0], s[1], config,
                                    tL * 1e6, ops / tL / 1e12, tF * 1e6, ops / tF / 1e12, tF / tL,
                                    m <= 64 ? String.format(Locale.ROOT, "%6.0f GB/s %4.0f%%", weightBw / 1e9,
                                            100 * weightBw / copyBw) : ""));
                            System.err.println(rows.get(rows.size() - 1));
                            csvText.append(String.format(Locale.ROOT, "%d,%d,%d,%s,%.2f,%.1f,%.2f,%.1f,%.3f,%.0f,%.0f%n",
                                    m, s[0], s[1], config, tL * 1e6, ops / tL / 1e12, tF * 1e6, ops / tF / 1e12,
                                    tF / tL, weightBw / 1e9, copyBw / 1e9));
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT, "%n%5s %6s %6s  %-22s %9s %7s %9s %7s %6s %s%n", "M", "K", "N", "config",
                "W8A8 us", "TOPS", "fp16 us", "TFLOPS", "ratio", "int8 weights read (M<=64) vs copy");
        rows.forEach(System.out::println);
        if (csv != null) {
            Files.writeString(csv, csvText.toString(), StandardCharsets.UTF_8);
        }
    }

    /** Device-to-device copy of 256 MiB, bytes read + written per second. */
    static double copyBandwidth(Context gpu) {
        long rows = 8192;
        long cols = 16384;
        try (Tensor a = gpu.allocate(DType.F16, rows, cols);
                Tensor b = gpu.allocate(DType.F16, rows, cols)) {
            short[] row = GemmProblem.randomF16(new java.util.SplittableRandom(3), rows * cols);
            a.copyFrom(row);
            double sec = GpuTimer.time(gpu, i -> b.copyFrom(a));
            return 2.0 * 2 * rows * cols / sec;
        }
    }

    static String deviceName() {
        String info = Lowbit.buildInfo();
        String env = System.getenv("LOWBIT_DEVICE_NAME");
        return env != null ? env : "CUDA device 0 (" + info.substring(info.indexOf("CUDA")) + ")";
    }

    static int[][] parseShapes(String s) {
        String[] parts = s.split(",");
        int[][] shapes = new int[parts.length][];
        for (int i = 0; i < parts.length; i++) {
            String[] kn = parts[i].trim().split("x");
            if (kn.length != 2) {
                throw new IllegalArgumentException("shape '" + parts[i] + "' is not KxN");
            }
            shapes[i] = new int[] {Integer.parseInt(kn[0]), Integer.parseInt(kn[1])};
        }
        return shapes;
    }

    static int[] parseInts(String s) {
        String[] parts = s.split(",");
        int[] v = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            v[i] = Integer.parseInt(parts[i].trim());
        }
        return v;
    }
}
