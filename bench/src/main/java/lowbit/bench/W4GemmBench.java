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
 * 4-bit GEMMs on the GPU: W4A8 (packed INT4 weights, per-channel scales), W4A4 (packed INT4
 * activations with per-token scales and the same weights) and DGQ A8W4 (4-bit codes, U8 group
 * scales, G = 128, signed) against lowbit's W8A8 and cuBLAS FP16 ({@code cublasGemmEx}, FP32
 * accumulation) on the same device in the same run. On an sm_90 GPU, at M &gt; 16, the 4-bit
 * formats run on the fused kernel (lowbit.h, LOWBIT_GEMM_SM90_W4: codes expanded in the wgmma
 * mainloop; W4A4's activations expanded to INT8 first); W4A8 is also timed on the expansion path
 * (the weights to an INT8 copy, then the tuned W8A8 kernel of the shape, forced) for the fused
 * kernel's gain; at M &lt;= 16 the weight-streaming decode kernel (W4A4's activations expanded as
 * they are staged); elsewhere the portable kernel. LOWBIT_W4_CONFIG=name forces the fused kernel's
 * tile configuration (for tuning it).
 *
 * <p>Per cell: median us per launch (back-to-back launches, {@link GpuTimer}); TOPS (2·M·N·K /
 * time); each 4-bit format's throughput as a fraction of W8A8's (t_W8A8 / t; the issue targets are
 * &gt;= 0.90 for W4A8, W4A4 and DGQ at M &gt;= 1024, &gt;= 0.90 for A8W4 at M &gt;= 2048), W4A4's
 * as a fraction of W4A8's (t_W4A8 / t_W4A4; the target at M &lt;= 16 is 1.0: W4A4 decode as fast as
 * W4A8's) and the speed-ups over cuBLAS FP16 (t_FP16 / t); and the expansion's share of the W4A8
 * time, two ways: measured, (t_W4A8 - t_W8A8) / t_W4A8 (the same configuration runs in both, so the
 * difference is the expansion; the INT8 copy may partly be read from L2 right after it was
 * written, which makes this a slight under-estimate), and modelled, 1.5·N·K bytes (N·K/2 read, N·K
 * written) at the device copy bandwidth measured in the same run, over t_W4A8; W4A4's measured
 * share, (t_W4A4 - t_W8A8) / t_W4A4, in the CSV. All outputs are F16 with per-token activation
 * scales; every format's weights exist in copies that together hold at least 128 MB and launch i
 * reads copy i mod copies, so the 50 MB L2 does not serve them (the activations, as W8A8's, are
 * not rotated). M = 1 and 16 are the decode cells (the M &lt;= 16 kernels; DecodeBench has more).
 *
 * <pre>
 * java -cp ... lowbit.bench.W4GemmBench [--shapes KxN,...] [--m 1,16,64,...] [--table tuning.txt] [--csv out.csv]
 * </pre>
 */
public final class W4GemmBench {
    static final int[] DEFAULT_M = {1, 16, 64, 256, 1024, 2048, 4096, 8192};

    private W4GemmBench() {}

    /** Packed S4 activations, M x K (rows of (K + 1) / 2 bytes), any nibble in -8..7. */
    static byte[] randomS4(SplittableRandom rnd, int m, int k) {
        byte[] v = new byte[Math.toIntExact((long) m * ((k + 1) / 2))];
        for (int i = 0; i < v.length; i++) {
            v[i] = (byte) rnd.nextInt(256);
        }
        return v;
    }

    public static void main(String[] args) throws Exception {
        int[][] shapes = GemmBench.DEFAULT_SHAPES;
        int[] ms = DEFAULT_M;
        Path table = null;
        Path csv = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes": shapes = GemmBench.parseShapes(args[++i]); break;
                case "--m": ms = GemmBench.parseInts(args[++i]); break;
                case "--table": table = Path.of(args[++i]); break;
                case "--csv": csv = Path.of(args[++i]); break;
                default: throw new IllegalArgumentException("unknown option " + args[i]
                        + " (use --shapes KxN,..., --m M,..., --table FILE, --csv FILE)");
            }
        }
        if (Lowbit.cudaDeviceCount() == 0) {
            System.out.println("W4GemmBench: no CUDA device (" + Lowbit.buildInfo() + "); nothing to measure");
            return;
        }
        List<String> rows = new ArrayList<>();
        StringBuilder csvText = new StringBuilder("m,k,n,config_w8a8,config_w4a8,config_w4a4,w8a8_us,w4a8_us,w4a8_expand_us,w4a4_us,"
                + "dgq_g128_us,cublas_f16_us,w8a8_tops,w4a8_tops,w4a4_tops,dgq_tops,w4a8_vs_w8a8,w4a4_vs_w8a8,"
                + "w4a4_vs_w4a8,dgq_vs_w8a8,w4a8_vs_f16,w4a4_vs_f16,dgq_vs_f16,expand_share_measured,"
                + "expand_share_model,w4a4_expand_share_measured,copy_gbps\n");
        try (Context gpu = Context.open(Backend.CUDA)) {
            if (table != null) {
                gpu.loadGemmTuning(Files.readString(table, StandardCharsets.UTF_8));
            }
            double copyBw = GemmBench.copyBandwidth(gpu);
            System.out.printf(Locale.ROOT, "W4GemmBench on %s, %s%ncopy bandwidth (read+write) %.0f GB/s%n",
                    GemmBench.deviceName(), Lowbit.buildInfo(), copyBw / 1e9);
            for (int[] s : shapes) {
                int k = s[0];
                int n = s[1];
                try (GemmProblem.Weights w8 = new GemmProblem.Weights(gpu, n, k, 7);
                        FourBitWeights w = new FourBitWeights(gpu, n, k, 8)) {
                    for (int m : ms) {
                        try (GemmProblem p = new GemmProblem(gpu, w8, m, 11);
                                Tensor xv = gpu.upload(GemmProblem.randomS8(new SplittableRandom(13), (long) m * k),
                                        DType.S8, m, k);
                                Tensor xs = gpu.upload(GemmProblem.randomScales(new SplittableRandom(17), m), 1, m);
                                Tensor x4v = gpu.upload(randomS4(new SplittableRandom(19), m, k), DType.S4, m, k)) {
                            QuantizedTensor x8 = new QuantizedTensor(xv, xs, Granularity.PER_ROW, 0);
                            QuantizedTensor x4 = new QuantizedTensor(x4v, xs, Granularity.PER_ROW, 0);
                            Tensor out = p.out;
                            String config8 = p.dispatched(gpu);
                            String config4 = gpu.gemmConfigFor(x8, w.w4.get(0), DType.F16);
                            String config44 = gpu.gemmConfigFor(x4, w.w4.get(0), DType.F16);
                            double t8 = GpuTimer.time(gpu, i -> p.w8a8(gpu, Context.AUTO, i));
                            double t4 = GpuTimer.time(gpu, i -> gpu.gemmInto(x8, w.w4.get(i % w.w4.size()), null, out));
                            double t44 = GpuTimer.time(gpu, i -> gpu.gemmInto(x4, w.w4.get(i % w.w4.size()), null, out));
                            double tD = GpuTimer.time(gpu, i -> gpu.gemmDgqInto(x8, w.dgq.get(i % w.dgq.size()), null, out));
                            double tF = GpuTimer.time(gpu, i -> p.f16(gpu, i));
                            // The expansion path forced (W8A8's tuned configuration of the shape on the
                            // INT8 copy of the weights), when Auto ran something else (the fused kernel).
                            boolean expandable = Lowbit.gemmConfigs().contains(config8) && !config4.equals(config8);
                            double t4x = expandable ? GpuTimer.time(gpu,
                                    i -> gpu.gemmInto(x8, w.w4.get(i % w.w4.size()), null, out, config8)) : t4;
                            double ops = 2.0 * m * n * k;
                            double shareMeasured = (t4x - t8) / t4x;
                            double shareModel = 1.5 * n * k / copyBw / t4x;
                            double share44 = (t44 - t8) / t44;
                            String configs = config8 + (config4.equals(config8) ? "" : "/w4:" + config4)
                                    + (config44.equals(config8) ? "" : "/w4a4:" + config44);
                            rows.add(String.format(Locale.ROOT,
                                    "%5d %6d %6d  %-30s | %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f | %5.0f %5.0f %5.0f %5.0f"
                                            + " | %5.2f %5.2f %5.2f | %5.2f | %5.2f %5.2f %5.2f | %5.2f | %5.1f%% %5.1f%%",
                                    m, k, n, configs, t8 * 1e6, t4 * 1e6, t4x * 1e6, t44 * 1e6, tD * 1e6, tF * 1e6,
                                    ops / t8 / 1e12, ops / t4 / 1e12, ops / t44 / 1e12, ops / tD / 1e12, t8 / t4,
                                    t8 / t44, t8 / tD, t4 / t44, tF / t4, tF / t44, tF / tD, t4x / t4,
                                    100 * shareMeasured, 100 * shareModel));
                            System.err.println(rows.get(rows.size() - 1));
                            csvText.append(String.format(Locale.ROOT,
                                    "%d,%d,%d,%s,%s,%s,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.1f,%.1f,%.1f,%.1f,%.3f,%.3f,%.3f,%.3f,"
                                            + "%.3f,%.3f,%.3f,%.4f,%.4f,%.4f,%.0f%n",
                                    m, k, n, config8, config4, config44, t8 * 1e6, t4 * 1e6, t4x * 1e6, t44 * 1e6, tD * 1e6,
                                    tF * 1e6, ops / t8 / 1e12, ops / t4 / 1e12, ops / t44 / 1e12, ops / tD / 1e12,
                                    t8 / t4, t8 / t44, t4 / t44, t8 / tD, tF / t4, tF / t44, tF / tD, shareMeasured,
                                    shareModel, share44, copyBw / 1e9));
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT,
                "%n%5s %6s %6s  %-30s | %8s %8s %8s %8s %8s %8s | %5s %5s %5s %5s | %17s | %5s | %17s | %5s | %s%n",
                "M", "K", "N", "config", "W8A8 us", "W4A8 us", "W4A8x us", "W4A4 us", "DGQ us", "fp16 us", "TOPS", "W4",
                "W4A4", "DGQ", "vs W8A8", "A4/A8", "vs fp16", "x/W4", "expansion share");
        System.out.println("(vs W8A8: throughput as a fraction of W8A8's, W4A8, W4A4, DGQ; A4/A8: W4A4's throughput as a"
                + " fraction of W4A8's; vs fp16: speed-up over cuBLAS FP16, W4A8, W4A4, DGQ; W4A8x: W4A8 on the"
                + " expansion path (W8A8's configuration forced), x/W4: its time over Auto's W4A8 (the fused kernel's"
                + " gain); expansion share of the W4A8x time: measured (t_W4A8x - t_W8A8), then modelled (1.5 N K"
                + " bytes at copy bandwidth))");
        rows.forEach(System.out::println);
        if (csv != null) {
            Files.writeString(csv, csvText.toString(), StandardCharsets.UTF_8);
        }
    }
}
