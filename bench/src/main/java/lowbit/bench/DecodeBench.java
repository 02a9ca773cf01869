package lowbit.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import lowbit.Backend;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.Lowbit;
import lowbit.QuantizedTensor;
import lowbit.Tensor;

/**
 * Decode GEMM benchmark: at small M (tokens per step) a linear layer is bound by reading its weights,
 * so per cell it times lowbit's three weight formats -- W8A8 (INT8 weights), W4A8 (packed INT4
 * weights, per-channel scales) and DGQ A8W4 (4-bit codes with U8 group scales, G = 128, signed) --
 * against cuBLAS FP16 ({@code cublasGemmEx}, FP32 accumulation) on the same device in the same run:
 * median us per launch (back-to-back launches, {@link GpuTimer}), the speed-up over cuBLAS FP16, and
 * the rate at which the packed weights (with their scales) are read, against the device-to-device
 * copy bandwidth (read + write) measured in the same run. All outputs are F16 with per-token
 * activation scales; every format's weights exist in copies that together hold at least 128 MB and
 * launch i reads copy i mod copies, so the 50 MB L2 does not serve them. The layer columns time
 * what a decode step runs per layer from F16 activations: the per-token quantize, then the W4A8 or
 * DGQ GEMM, back to back (on sm_90 the GEMM starts while the quantize runs: programmatic dependent
 * launch, native/src/cuda/pdl.cuh).
 *
 * <pre>
 * java -cp ... lowbit.bench.DecodeBench [--shapes KxN,...] [--m 1,4,16,64] [--csv out.csv]
 * </pre>
 */
public final class DecodeBench {
    static final int[] DEFAULT_M = {1, 4, 16, 64};

    private DecodeBench() {}

    /**
     * Median seconds of a device-to-device copy that moves {@code bytes} in all (bytes / 2 read, bytes / 2
     * written), the sources rotated through at least 256 MB so the L2 does not serve them: what a kernel
     * that reads {@code bytes} once would take if it ran at copy speed with a copy's fixed costs.
     */
    static double sameBytesCopy(Context gpu, long bytes) {
        long half = Math.max(16, bytes / 2 / 16 * 16);
        int copies = (int) Math.min(64, Math.max(1, (256L << 20) / half));
        List<Tensor> src = new ArrayList<>();
        List<Tensor> dst = new ArrayList<>();
        try {
            for (int i = 0; i < copies; i++) {
                src.add(gpu.allocate(DType.S8, 1, half));
                dst.add(gpu.allocate(DType.S8, 1, half));
            }
            return GpuTimer.time(gpu, i -> dst.get(i % copies).copyFrom(src.get(i % copies)));
        } finally {
            src.forEach(Tensor::close);
            dst.forEach(Tensor::close);
        }
    }

    public static void main(String[] args) throws Exception {
        int[][] shapes = GemmBench.DEFAULT_SHAPES;
        int[] ms = DEFAULT_M;
        Path csv = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes": shapes = GemmBench.parseShapes(args[++i]); break;
                case "--m": ms = GemmBench.parseInts(args[++i]); break;
                case "--csv": csv = Path.of(args[++i]); break;
                default: throw new IllegalArgumentException("unknown option " + args[i]
                        + " (use --shapes KxN,..., --m M,..., --csv FILE)");
            }
        }
        if (Lowbit.cudaDeviceCount() == 0) {
            System.out.println("DecodeBench: no CUDA device (" + Lowbit.buildInfo() + "); nothing to measure");
            return;
        }
        List<String> rows = new ArrayList<>();
        StringBuilder csvText = new StringBuilder("m,k,n,w8a8_us,w4a8_us,dgq_g128_us,cublas_f16_us,"
                + "w8a8_speedup,w4a8_speedup,dgq_speedup,w8a8_weight_gbps,w4a8_weight_gbps,dgq_weight_gbps,copy_gbps,"
                + "copy_same_8bit_us,copy_same_4bit_us,layer_w4a8_us,layer_dgq_us\n");
        try (Context gpu = Context.open(Backend.CUDA)) {
            double copyBw = GemmBench.copyBandwidth(gpu);
            System.out.printf(Locale.ROOT, "DecodeBench on %s, %s%ncopy bandwidth (read+write) %.0f GB/s%n",
                    GemmBench.deviceName(), Lowbit.buildInfo(), copyBw / 1e9);
            for (int[] s : shapes) {
                int k = s[0];
                int n = s[1];
                // Bytes a launch reads from its weights: codes plus scales (F32 per channel, U8 per group).
                double w8Bytes = (double) n * k + 4.0 * n;
                double w4Bytes = (double) n * k / 2 + 4.0 * n;
                double dgqBytes = (double) n * k / 2 + (double) n * (k / FourBitWeights.DGQ_GROUP) + 4.0 * n;
                double c8 = sameBytesCopy(gpu, (long) w8Bytes);
                double c4 = sameBytesCopy(gpu, (long) dgqBytes);
                try (GemmProblem.Weights w8 = new GemmProblem.Weights(gpu, n, k, 7);
                        FourBitWeights w = new FourBitWeights(gpu, n, k, 8)) {
                    for (int m : ms) {
                        try (GemmProblem p = new GemmProblem(gpu, w8, m, 11);
                                Tensor xv = gpu.upload(GemmProblem.randomS8(new SplittableRandom(13), (long) m * k),
                                        DType.S8, m, k);
                                Tensor xs = gpu.upload(GemmProblem.randomScales(new SplittableRandom(17), m), 1, m);
                                Tensor xf = gpu.upload(GemmProblem.randomF16(new SplittableRandom(19), (long) m * k),
                                        DType.F16, m, k);
                                Tensor out = gpu.allocate(DType.F16, m, n)) {
                            QuantizedTensor x8 = new QuantizedTensor(xv, xs, Granularity.PER_ROW, 0);
                            double t8 = GpuTimer.time(gpu, i -> p.w8a8(gpu, Context.AUTO, i));
                            double t4 = GpuTimer.time(gpu, i -> gpu.gemmInto(x8, w.w4.get(i % w.w4.size()), null, out));
                            double tD = GpuTimer.time(gpu, i -> gpu.gemmDgqInto(x8, w.dgq.get(i % w.dgq.size()), null, out));
                            double tF = GpuTimer.time(gpu, i -> p.f16(gpu, i));
                            // The whole layer from F16 activations: per-token quantize, then the GEMM.
                            double l4 = GpuTimer.time(gpu, i -> {
                                gpu.quantizeInto(xf, x8);
                                gpu.gemmInto(x8, w.w4.get(i % w.w4.size()), null, out);
                            });
                            double lD = GpuTimer.time(gpu, i -> {
                                gpu.quantizeInto(xf, x8);
                                gpu.gemmDgqInto(x8, w.dgq.get(i % w.dgq.size()), null, out);
                            });
                            rows.add(String.format(Locale.ROOT,
                                    "%4d %6d %6d | %8.1f %4.0f%% | %8.1f %4.0f%% | %8.1f %4.0f%% | %8.1f | %5.2f %5.2f %5.2f"
                                            + " | %6.1f %6.1f | %5.2f %5.2f %5.2f | %7.1f %7.1f %5.2f %5.2f",
                                    m, k, n, t8 * 1e6, 100 * w8Bytes / t8 / copyBw, t4 * 1e6, 100 * w4Bytes / t4 / copyBw,
                                    tD * 1e6, 100 * dgqBytes / tD / copyBw, tF * 1e6, tF / t8, tF / t4, tF / tD,
                                    c8 * 1e6, c4 * 1e6, c8 / t8, c4 / t4, c4 / tD, l4 * 1e6, lD * 1e6, tF / l4, tF / lD));
                            System.err.println(rows.get(rows.size() - 1));
                            csvText.append(String.format(Locale.ROOT,
                                    "%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%.3f,%.3f,%.3f,%.0f,%.0f,%.0f,%.0f,%.2f,%.2f,%.2f,%.2f%n", m, k, n,
                                    t8 * 1e6, t4 * 1e6, tD * 1e6, tF * 1e6, tF / t8, tF / t4, tF / tD, w8Bytes / t8 / 1e9,
                                    w4Bytes / t4 / 1e9, dgqBytes / tD / 1e9, copyBw / 1e9, c8 * 1e6, c4 * 1e6, l4 * 1e6,
                                    lD * 1e6));
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT, "%n%4s %6s %6s | %8s %5s | %8s %5s | %8s %5s | %8s | %s | %s | %s | %s%n", "M", "K",
                "N", "W8A8 us", "copy", "W4A8 us", "copy", "DGQ us", "copy", "fp16 us",
                "speed-up vs cuBLAS FP16: W8A8 W4A8 DGQ", "same-bytes copy us: 8-bit 4-bit", "copy / kernel: W8A8 W4A8 DGQ",
                "layer us (F16 in: per-token quantize + GEMM): W4A8 DGQ, x FP16");
        System.out.println("(copy: packed weights + scales read per second, as % of the device copy bandwidth;"
                + " same-bytes copy: a device copy moving (read + write) as many bytes as the kernel reads, sources"
                + " rotated through >= 256 MB like the weights: the floor for a read of that size, fixed costs included)");
        rows.forEach(System.out::println);
        if (csv != null) {
            Files.writeString(csv, csvText.toString(), StandardCharsets.UTF_8);
        }
    }
}
