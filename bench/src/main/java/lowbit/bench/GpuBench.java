package lowbit.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import lowbit.DType;
import lowbit.ExpansionPlan;
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
 * <pre>java -cp ... lowbit.bench.GpuBench [rows cols]
 * java -cp ... lowbit.bench.GpuBench --per-token</pre>
 *
 * <p>{@code --per-token} runs only the per-token (dynamic PER_ROW) quantize table: F16 to S8 and S4
 * at 2048x4096, 4096x4096, 4096x14336 and 8192x8192 (and BF16 at 4096x4096), each against the
 * device copy of its own input. The kernel variant is chosen once per process by
 * {@code LOWBIT_ROWQUANT} (unset: the per-token kernel; {@code prefetch}: its pipelined variant; {@code legacy}), so
 * compare variants by running it once per value; the table's title names the value.
 */
public final class GpuBench {
    private static final int WARMUP = 5;
    private static final int BATCHES = 7;
    private static final int PER_BATCH = 20;

    private GpuBench() {}

    public static void main(String[] args) {
        if (args.length > 0 && args[0].equals("--per-token")) {
            if (Lowbit.cudaDeviceCount() == 0) {
                System.out.println("GpuBench: no CUDA device (" + Lowbit.buildInfo() + "); nothing to measure");
                return;
            }
            System.out.println("GpuBench on " + Lowbit.buildInfo());
            perTokenShapes();
            return;
        }
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
        print(table);
        llamaShapes();
    }

    private static void print(List<String[]> table) {
        System.out.printf(Locale.ROOT, "%-44s %12s %12s %10s %9s%n", "kernel", "MB moved", "us/launch", "GB/s", "vs copy");
        for (String[] r : table) {
            System.out.printf(Locale.ROOT, "%-44s %12s %12s %10s %9s%n", (Object[]) r);
        }
    }

    private static final int LLAMA_M = 4096;
    private static final int[][] LAYER_SHAPES = {{4096, 4096}, {4096, 14336}, {14336, 4096}};

    /**
     * LLaMA activations, M = 4096: per-token quantize at K = 4096 and 14336, FlattenQuant's
     * flatten-and-quantize (static per-tensor scale, a plan expanding K to 1.25 K, 4096 -> 5120 and 14336 -> 17920: every
     * fourth channel split in two), each against the device copy of its own input in the same run;
     * then whole W8A8 layers (per-token quantize + tuned GEMM with its fused epilogue, F16 out)
     * against cuBLAS FP16 on the same shapes.
     */
    private static void llamaShapes() {
        List<String[]> table = new ArrayList<>();
        List<String> layers = new ArrayList<>();
        Random rnd = new Random(2);
        try (Context gpu = Context.open(Backend.CUDA)) {
            for (int k : new int[] {4096, 14336}) {
                long n = (long) LLAMA_M * k;
                try (Tensor x = gpu.upload(gaussianF16(rnd, n), DType.F16, LLAMA_M, k);
                        Tensor copy = gpu.allocate(DType.F16, LLAMA_M, k);
                        QuantizedTensor row8 = gpu.allocateQuantized(LLAMA_M, k, 8, Granularity.PER_ROW, 0);
                        QuantizedTensor row4 = gpu.allocateQuantized(LLAMA_M, k, 4, Granularity.PER_ROW, 0);
                        QuantizedTensor tensor8 = gpu.allocateQuantized(LLAMA_M, k, 8, Granularity.PER_TENSOR, 0)) {
                    double copySec = time(gpu, () -> copy.copyFrom(x));
                    double copyBw = 4.0 * n / copySec;
                    String shape = " " + LLAMA_M + "x" + k;
                    table.add(row("device copy F16" + shape, 4.0 * n, copySec, copyBw));
                    addQuant(table, gpu, "per-token F16->S8" + shape, x, row8, 3.0 * n + 4.0 * LLAMA_M, copyBw);
                    addQuant(table, gpu, "per-token F16->S4" + shape, x, row4, 2.5 * n + 4.0 * LLAMA_M, copyBw);
                    addQuant(table, gpu, "per-tensor dynamic F16->S8" + shape, x, tensor8, 3.0 * n + 4, copyBw);
                    flatten(table, gpu, x, k, copyBw);
                }
            }
            for (int[] kn : LAYER_SHAPES) {
                layers.add(layer(gpu, rnd, kn[0], kn[1]));
            }
        }
        System.out.printf(Locale.ROOT, "%nLLaMA activations, M = %d (bytes = minimum read + written)%n", LLAMA_M);
        print(table);
        System.out.printf(Locale.ROOT, "%nW8A8 linear layer, M = %d: per-token quantize + tuned GEMM (F16 out) vs cuBLAS FP16 and BF16%n",
                LLAMA_M);
        System.out.printf(Locale.ROOT, "%-7s %-6s %-28s %10s %10s %10s %10s %9s %10s %9s %9s%n", "K", "N", "config", "quant us",
                "gemm us", "layer us", "FP16 us", "x FP16", "BF16 us", "x BF16", "quant %");
        layers.forEach(System.out::println);
    }

    private static final int[][] PER_TOKEN_SHAPES = {{2048, 4096}, {4096, 4096}, {4096, 14336}, {8192, 8192}};

    /**
     * Per-token quantize (PER_ROW, computed scales) of F16 activations to S8 and S4 on
     * PER_TOKEN_SHAPES, BF16 to S8 at 4096x4096, each against the device copy of its input in the
     * same run; bytes = x read + codes and scales written.
     */
    private static void perTokenShapes() {
        String variant = System.getenv("LOWBIT_ROWQUANT");
        List<String[]> table = new ArrayList<>();
        Random rnd = new Random(3);
        try (Context gpu = Context.open(Backend.CUDA)) {
            for (int[] shape : PER_TOKEN_SHAPES) {
                int m = shape[0], k = shape[1];
                long n = (long) m * k;
                String dims = " " + m + "x" + k;
                try (Tensor x = gpu.upload(gaussianF16(rnd, n), DType.F16, m, k);
                        Tensor copy = gpu.allocate(DType.F16, m, k);
                        QuantizedTensor row8 = gpu.allocateQuantized(m, k, 8, Granularity.PER_ROW, 0);
                        QuantizedTensor row4 = gpu.allocateQuantized(m, k, 4, Granularity.PER_ROW, 0)) {
                    double copySec = time(gpu, () -> copy.copyFrom(x));
                    double copyBw = 4.0 * n / copySec;
                    table.add(row("device copy F16" + dims, 4.0 * n, copySec, copyBw));
                    addQuant(table, gpu, "per-token F16->S8" + dims, x, row8, 3.0 * n + 4.0 * m, copyBw);
                    addQuant(table, gpu, "per-token F16->S4" + dims, x, row4, 2.5 * n + 4.0 * m, copyBw);
                    if (m == 4096 && k == 4096) {
                        try (Tensor xb = gpu.upload(gaussianBf16(rnd, n), DType.BF16, m, k)) {
                            addQuant(table, gpu, "per-token BF16->S8" + dims, xb, row8, 3.0 * n + 4.0 * m, copyBw);
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT, "%nPer-token quantize, LOWBIT_ROWQUANT=%s, median of %d batches x %d launches%n",
                variant == null || variant.isEmpty() ? "(unset: auto)" : variant, BATCHES, PER_BATCH);
        print(table);
    }

    /**
     * FlattenQuant's flatten-and-quantize, K -> 1.25 K (every fourth channel split in two,
     * multipliers smoothing / copies): static per-tensor scale to S8 and S4, and per-token to S8, with
     * the plan in lowbit.quant.FlattenPlan's order (the first copy of every channel at its own index,
     * the extra copies appended) and in the adjacent order of earlier versions (copies side by side).
     */
    private static void flatten(List<String[]> table, Context gpu, Tensor x, int k, double copyBw) {
        int outCols = k + k / 4;
        int[] srcAdjacent = new int[outCols];
        float[] multAdjacent = new float[outCols];
        int[] srcAppended = new int[outCols];
        float[] multAppended = new float[outCols];
        int j = 0;
        int extra = k;
        for (int c = 0; c < k; c++) {
            int copies = c % 4 == 3 ? 2 : 1;
            float smooth = 0.5f + (c % 7) * 0.125f;
            for (int i = 0; i < copies; i++) {
                srcAdjacent[j] = c;
                multAdjacent[j++] = smooth / copies;
            }
            srcAppended[c] = c;
            multAppended[c] = smooth / copies;
            if (copies == 2) {
                srcAppended[extra] = c;
                multAppended[extra++] = smooth / copies;
            }
        }
        flattenRows(table, gpu, x, k, copyBw, srcAppended, multAppended, "appended");
        flattenRows(table, gpu, x, k, copyBw, srcAdjacent, multAdjacent, "adjacent");
    }

    private static void flattenRows(List<String[]> table, Context gpu, Tensor x, int k, double copyBw, int[] src, float[] mult,
            String order) {
        int outCols = src.length;
        long n = (long) LLAMA_M * k;
        long nOut = (long) LLAMA_M * outCols;
        try (ExpansionPlan plan = gpu.uploadPlan(src, mult, k);
                QuantizedTensor q8 = gpu.allocateQuantized(LLAMA_M, outCols, 8, Granularity.PER_TENSOR, 0);
                QuantizedTensor q4 = gpu.allocateQuantized(LLAMA_M, outCols, 4, Granularity.PER_TENSOR, 0);
                QuantizedTensor d8 = gpu.allocateQuantized(LLAMA_M, outCols, 8, Granularity.PER_ROW, 0)) {
            q8.scales().copyFrom(new float[] {0.05f});
            q4.scales().copyFrom(new float[] {0.8f});
            String shape = " " + LLAMA_M + "x" + k + "->" + outCols + " " + order;
            double sec8 = time(gpu, () -> gpu.flattenQuantizeWithScales(x, plan, q8));
            table.add(ratio(row("flatten static F16->S8" + shape, 2.0 * n + nOut, sec8, (2.0 * n + nOut) / sec8), copyBw));
            double sec4 = time(gpu, () -> gpu.flattenQuantizeWithScales(x, plan, q4));
            table.add(ratio(row("flatten static F16->S4" + shape, 2.0 * n + nOut / 2.0, sec4,
                    (2.0 * n + nOut / 2.0) / sec4), copyBw));
            double secD = time(gpu, () -> gpu.flattenQuantizeInto(x, plan, d8));
            double bytesD = 2.0 * n + nOut + 4.0 * LLAMA_M;
            table.add(ratio(row("flatten per-token F16->S8" + shape, bytesD, secD, bytesD / secD), copyBw));
            if (order.equals("appended")) {
                // issue 9: the fused flatten-and-quantize as a share of the GEMM it feeds (M = 4096, K' = outCols)
                Random rnd = new Random(11);
                for (int nw : k == 4096 ? new int[] {4096, 14336} : new int[] {4096}) {
                    try (Tensor w = gpu.upload(gaussianF16(rnd, (long) nw * outCols), DType.F16, nw, outCols);
                            QuantizedTensor qw = gpu.quantize(w, 8, Granularity.PER_ROW);
                            Tensor out = gpu.allocate(DType.F16, LLAMA_M, nw)) {
                        gpu.gemmInto(q8, qw, null, out);
                        double gemm = time(gpu, () -> gpu.gemmInto(q8, qw, null, out));
                        table.add(new String[] {"W8A8 GEMM fed by it, N = " + nw + shape, "", String.format(Locale.ROOT, "%.1f", gemm * 1e6),
                                "", String.format(Locale.ROOT, "flatten S8 = %.1f%% of it", 100 * sec8 / gemm)});
                    }
                }
            }
        }
    }

    /** One W8A8 layer row: quantize, GEMM, both back to back, and cuBLAS FP16 on the same operands. */
    private static String layer(Context gpu, Random rnd, int k, int n) {
        try (Tensor x = gpu.upload(gaussianF16(rnd, (long) LLAMA_M * k), DType.F16, LLAMA_M, k);
                Tensor w = gpu.upload(gaussianF16(rnd, (long) n * k), DType.F16, n, k);
                QuantizedTensor qw = gpu.quantize(w, 8, Granularity.PER_ROW);
                QuantizedTensor qx = gpu.allocateQuantized(LLAMA_M, k, 8, Granularity.PER_ROW, 0);
                Tensor out = gpu.allocate(DType.F16, LLAMA_M, n);
                Tensor ref = gpu.allocate(DType.F16, LLAMA_M, n);
                Tensor xb = gpu.upload(gaussianBf16(rnd, (long) LLAMA_M * k), DType.BF16, LLAMA_M, k);
                Tensor wb = gpu.upload(gaussianBf16(rnd, (long) n * k), DType.BF16, n, k);
                Tensor refb = gpu.allocate(DType.BF16, LLAMA_M, n)) {
            gpu.quantizeInto(x, qx);
            String config = gpu.gemmConfigFor(qx, qw, DType.F16);
            double quant = time(gpu, () -> gpu.quantizeInto(x, qx));
            double gemm = time(gpu, () -> gpu.gemmInto(qx, qw, null, out));
            double whole = time(gpu, () -> {
                gpu.quantizeInto(x, qx);
                gpu.gemmInto(qx, qw, null, out);
            });
            double cublas = time(gpu, () -> gpu.baselineGemmF16(x, w, ref));
            double bf16 = time(gpu, () -> gpu.denseGemm(xb, wb, true, refb, false));
            return String.format(Locale.ROOT, "%-7d %-6d %-28s %10.1f %10.1f %10.1f %10.1f %9.2f %10.1f %9.2f %8.1f%%", k, n, config,
                    quant * 1e6, gemm * 1e6, whole * 1e6, cublas * 1e6, cublas / whole, bf16 * 1e6, bf16 / whole, 100 * quant / whole);
        }
    }

    private static short[] gaussianF16(Random rnd, long n) {
        short[] h = new short[Math.toIntExact(n)];
        for (int i = 0; i < h.length; i++) {
            h[i] = Half.fromFloat((float) rnd.nextGaussian());
        }
        return h;
    }

    private static short[] gaussianBf16(Random rnd, long n) {
        short[] h = new short[Math.toIntExact(n)];
        for (int i = 0; i < h.length; i++) {
            h[i] = Half.bf16FromFloat((float) rnd.nextGaussian());
        }
        return h;
    }

    private static String[] ratio(String[] r, double copyBw) {
        double bw = Double.parseDouble(r[3]) * 1e9;
        r[4] = String.format(Locale.ROOT, "%.2f", bw / copyBw);
        return r;
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
