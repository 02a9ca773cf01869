package lowbit.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.Half;
import lowbit.Lowbit;
import lowbit.QuantizedTensor;
import lowbit.Tensor;

/**
 * GPU bench runner: device memory bandwidth of lowbit's CUDA kernels against the device-to-device
 * copy bandwidth measured in the same run (the copy is the ceiling of a memory-bound kernel).
 *
 * <p>Each figure: 5 warm-up launches, then 7 batches of 20 back-to-back launches each followed by
 * one synchronize; the median batch gives the time per launch. Bytes count what a kernel must move
 * at least (reads + writes), so a kernel that re-reads its input shows a lower figure than the
 * bytes it really moves.
 *
 * <pre>java -cp ... lowbit.bench.GpuBench [rows cols]</pre>
 */
public final class GpuBench {
    private static final int WARMUP = 5;
    private static final int BATCHES = 7;
    private static final int PER_BATCH = 20;

    private GpuBench() {}

    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 8192;
        int cols = args.length > 1 ? Integer.parseInt(args[1]) : 8192;
        if (Lowbit.cudaDeviceCount() == 0) {
            System.out.println("GpuBench: no CUDA device (" + Lowbit.buildInfo() + "); nothing to measure");
            return;
        }
        System.out.println("GpuBench on " + Lowbit.buildInfo());
        List<String[]> table = new ArrayList<>();
        try (Context gpu = Context.open(Backend.CUDA)) {
            long n = (long) rows * cols;
            short[] host = new short[Math.toIntExact(n)];
            Random rnd = new Random(1);
            for (int i = 0; i < host.length; i++) {
                host[i] = Half.fromFloat((float) rnd.nextGaussian());
            }
            try (Tensor x = gpu.upload(host, DType.F16, rows, cols);
                    Tensor copy = gpu.allocate(DType.F16, rows, cols);
                    QuantizedTensor row8 = gpu.allocateQuantized(rows, cols, 8, Granularity.PER_ROW, 0);
                    QuantizedTensor tensor8 = gpu.allocateQuantized(rows, cols, 8, Granularity.PER_TENSOR, 0);
                    QuantizedTensor row4 = gpu.allocateQuantized(rows, cols, 4, Granularity.PER_ROW, 0);
                    QuantizedTensor group4 = gpu.allocateQuantized(rows, cols, 4, Granularity.PER_GROUP, 128)) {
                double copySec = time(gpu, () -> copy.copyFrom(x));
                double copyBw = 2.0 * 2 * n / copySec;
                table.add(row("device copy F16 (read+write)", 4.0 * n, copySec, copyBw));
                addQuant(table, gpu, "quantize F16->S8 per-row", x, row8, 2.0 * n + n + 4.0 * rows, copyBw);
                addQuant(table, gpu, "quantize F16->S8 per-tensor", x, tensor8, 2.0 * n + n + 4, copyBw);
                addQuant(table, gpu, "quantize F16->S4 per-row", x, row4, 2.0 * n + n / 2.0 + 4.0 * rows, copyBw);
                addQuant(table, gpu, "quantize F16->S4 per-group128", x, group4,
                        2.0 * n + n / 2.0 + 4.0 * n / 128, copyBw);
            }
        }
        System.out.printf(Locale.ROOT, "%nshape %d x %d, median of %d batches x %d launches%n", rows, cols, BATCHES,
                PER_BATCH);
        System.out.printf(Locale.ROOT, "%-34s %12s %12s %10s %9s%n", "kernel", "MB moved", "us/launch", "GB/s", "vs copy");
        for (String[] r : table) {
            System.out.printf(Locale.ROOT, "%-34s %12s %12s %10s %9s%n", (Object[]) r);
        }
    }

    private static void addQuant(List<String[]> table, Context gpu, String name, Tensor x, QuantizedTensor q,
            double bytes, double copyBw) {
        double sec = time(gpu, () -> gpu.quantizeInto(x, q));
        String[] r = row(name, bytes, sec, bytes / sec);
        r[4] = String.format(Locale.ROOT, "%.2f", bytes / sec / copyBw);
        table.add(r);
    }

    private static String[] row(String name, double bytes, double sec, double bw) {
        return new String[] {
            name,
            String.format(Locale.ROOT, "%.1f", bytes / 1e6),
            String.format(Locale.ROOT, "%.1f", sec * 1e6),
            String.format(Locale.ROOT, "%.0f", bw / 1e9),
            "1.00"
        };
    }

    /** Median seconds per launch of {@code op}. */
    static double time(Context ctx, Runnable op) {
        for (int i = 0; i < WARMUP; i++) {
            op.run();
        }
        ctx.synchronize();
        double[] perLaunch = new double[BATCHES];
        for (int b = 0; b < BATCHES; b++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < PER_BATCH; i++) {
                op.run();
            }
            ctx.synchronize();
            perLaunch[b] = (System.nanoTime() - t0) / 1e9 / PER_BATCH;
        }
        Arrays.sort(perLaunch);
        return perLaunch[BATCHES / 2];
    }
}
