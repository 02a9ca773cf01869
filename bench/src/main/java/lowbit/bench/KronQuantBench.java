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
import lowbit.KronPrecision;
import lowbit.Lowbit;
import lowbit.QuantizedTensor;
import lowbit.Tensor;
import lowbit.calibrate.KroneckerTransform;

/**
 * FlatQuant's online transform + per-token quantization ({@code lowbit_kron_quantize}, F16 tokens
 * in, packed S4 or S8 codes + F32 scales out) on the GPU, against the 4-bit GEMM it feeds and the
 * device copy bandwidth, all measured in the same run (median of back-to-back launches, {@link
 * GpuTimer}). Per (row width n with FlatQuant's factors n1 x n2, tokens M, output channels N):
 *
 * <ul>
 *   <li>{@code kq4 us}, {@code kq8 us}: kron_quantize to S4 / S8, exact (lowbit.h's fixed-order FP32
 *       FMA chains on CUDA cores); {@code tc4 us}, {@code tc8 us}: the same with
 *       {@code LOWBIT_KRON_TF32} (the products on TF32 tensor cores; the exact kernel where the
 *       padded tiles do not fit shared memory); {@code hf4 us}, {@code hf8 us}: the same with
 *       {@code LOWBIT_KRON_HALF} (the products on FP16 tensor cores, mma.sync, kron_quantize_half.cu);
 *   <li>{@code quant4 us}: plain per-token quantize F16 -> S4 (lowbit_quantize), what the transform
 *       adds to;
 *   <li>{@code W4A4 us}: {@code lowbit_gemm_dequant} S4 x S4 (M x K=n activations from kq4, N x K
 *       INT4 weights, F16 out), the GEMM the codes feed; {@code W4A8 us}: S8 x S4 with kq8's codes;
 *   <li>{@code kq4/W4A4}, {@code kq8/W4A8}, {@code tc4/W4A4}, {@code tc8/W4A8}, {@code hf4/W4A4}: the
 *       overhead fractions (FlatQuant reports 0.07x); {@code hf4/tc4}: HALF's time over TF32's;
 *   <li>{@code GB/s}, {@code vs copy}: kq4's minimum traffic (F16 read, S4 + scales written) per
 *       second, and that over the copy bandwidth (read + write) of a 256 MiB device copy;
 *   <li>{@code TFLOP/s}: kq4's arithmetic rate, 2 M n (n1 + n2) FLOP (the two products on FP32
 *       CUDA cores, lowbit.h's fixed-order FMA chains); the table prints TF32's ({@code tc TF/s})
 *       and HALF's ({@code hf TF/s}); {@code hf copy}: hf4's minimum traffic over the copy
 *       bandwidth.
 * </ul>
 *
 * <pre>
 * java -cp ... lowbit.bench.KronQuantBench [--sizes 4096,11008,14336] [--m 1,16,2048] [--csv out.csv]
 * </pre>
 *
 * LLaMA-7B-shaped layers: K = 4096 feeds q/k/v/o (N = 4096) and gate/up (N = 11008); K = 11008 feeds
 * down_proj (N = 4096); K = 14336 (LLaMA-3-8B's down_proj input) feeds N = 4096.
 */
public final class KronQuantBench {
    static final int[] DEFAULT_SIZES = {4096, 11008, 14336};
    static final int[] DEFAULT_M = {1, 16, 2048};

    private KronQuantBench() {}

    public static void main(String[] args) throws Exception {
        int[] sizes = DEFAULT_SIZES;
        int[] ms = DEFAULT_M;
        Path csv = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--sizes": sizes = GemmBench.parseInts(args[++i]); break;
                case "--m": ms = GemmBench.parseInts(args[++i]); break;
                case "--csv": csv = Path.of(args[++i]); break;
                default: throw new IllegalArgumentException("unknown option " + args[i]
                        + " (use --sizes n,..., --m M,..., --csv FILE)");
            }
        }
        if (Lowbit.cudaDeviceCount() == 0) {
            System.out.println("KronQuantBench: no CUDA device (" + Lowbit.buildInfo() + "); nothing to measure");
            return;
        }
        List<String> rows = new ArrayList<>();
        StringBuilder csvText = new StringBuilder("n,n1,n2,m,n_out,kq4_us,kq8_us,tc4_us,tc8_us,quant4_us,w4a4_us,"
                + "w4a8_us,kq4_over_w4a4,kq8_over_w4a8,tc4_over_w4a4,tc8_over_w4a8,kq4_gbps,copy_gbps,kq4_over_copy,"
                + "kq4_tflops,tc4_tflops,hf4_us,hf8_us,hf4_over_w4a4,hf4_over_tc4,hf4_over_copy,hf4_tflops\n");
        try (Context gpu = Context.open(Backend.CUDA)) {
            double copyBw = GemmBench.copyBandwidth(gpu);
            System.out.printf(Locale.ROOT, "KronQuantBench on %s, %s%ncopy bandwidth (read+write) %.0f GB/s%n",
                    GemmBench.deviceName(), Lowbit.buildInfo(), copyBw / 1e9);
            SplittableRandom rnd = new SplittableRandom(5);
            for (int n : sizes) {
                int[] f = KroneckerTransform.decompose(n);
                int[] outs = n == 4096 ? new int[] {4096, 11008} : new int[] {4096};
                try (Tensor p1 = gpu.upload(factor(rnd, f[0]), f[0], f[0]);
                        Tensor p2 = gpu.upload(factor(rnd, f[1]), f[1], f[1])) {
                    for (int nOut : outs) {
                        try (QuantizedTensor w = randomInt4Weights(gpu, rnd, nOut, n)) {
                            for (int m : ms) {
                                String line = measure(gpu, rnd, n, f, m, nOut, p1, p2, w, copyBw, csvText);
                                rows.add(line);
                                System.err.println(line);
                            }
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT,
                "%n%-6s %-8s %5s %6s %8s %8s %8s %8s %8s %8s %8s %9s %9s %9s %9s %9s %9s %9s %8s %7s %8s %8s %8s%n", "n",
                "n1xn2", "M", "N", "kq4 us", "kq8 us", "tc4 us", "tc8 us", "hf4 us", "hf8 us", "quant4", "W4A4 us",
                "W4A8 us", "kq4/W4A4", "kq8/W4A8", "tc4/W4A4", "tc8/W4A8", "hf4/W4A4", "hf4/tc4", "vs copy", "tc TF/s",
                "hf copy", "hf TF/s");
        rows.forEach(System.out::println);
        if (csv != null) {
            Files.writeString(csv, csvText.toString(), StandardCharsets.UTF_8);
        }
    }

    private static String measure(Context gpu, SplittableRandom rnd, int n, int[] f, int m, int nOut, Tensor p1,
            Tensor p2, QuantizedTensor w, double copyBw, StringBuilder csvText) {
        try (Tensor x = gpu.upload(GemmProblem.randomF16(rnd, (long) m * n), DType.F16, m, n);
                QuantizedTensor q4 = gpu.allocateQuantized(m, n, 4, Granularity.PER_ROW, 0);
                QuantizedTensor q8 = gpu.allocateQuantized(m, n, 8, Granularity.PER_ROW, 0);
                QuantizedTensor plain4 = gpu.allocateQuantized(m, n, 4, Granularity.PER_ROW, 0);
                Tensor out = gpu.allocate(DType.F16, m, nOut)) {
            float clipMax = 0.95f;
            float clipMin = 0.9f;
            double kq4 = GpuTimer.time(gpu, i -> gpu.kronQuantizeInto(x, p1, p2, clipMax, clipMin, q4));
            double kq8 = GpuTimer.time(gpu, i -> gpu.kronQuantizeInto(x, p1, p2, clipMax, clipMin, q8));
            double tc4 = GpuTimer.time(gpu, i -> gpu.kronQuantizeInto(x, p1, p2, clipMax, clipMin, q4, KronPrecision.TF32));
            double tc8 = GpuTimer.time(gpu, i -> gpu.kronQuantizeInto(x, p1, p2, clipMax, clipMin, q8, KronPrecision.TF32));
            double hf4 = GpuTimer.time(gpu, i -> gpu.kronQuantizeInto(x, p1, p2, clipMax, clipMin, q4, KronPrecision.HALF));
            double hf8 = GpuTimer.time(gpu, i -> gpu.kronQuantizeInto(x, p1, p2, clipMax, clipMin, q8, KronPrecision.HALF));
            double quant4 = GpuTimer.time(gpu, i -> gpu.quantizeInto(x, plain4));
            double w4a4 = GpuTimer.time(gpu, i -> gpu.gemmInto(q4, w, null, out));
            // W4A8: INT8 activations (kq8's codes) x the same INT4 weights.
            double w4a8 = GpuTimer.time(gpu, i -> gpu.gemmInto(q8, w, null, out));
            gpu.synchronize();
            double bytes = 2.0 * m * n + m * n / 2.0 + 4.0 * m + 4.0 * ((long) f[0] * f[0] + (long) f[1] * f[1]);
            double bw = bytes / kq4;
            double flops = 2.0 * m * n * (f[0] + f[1]);
            csvText.append(String.format(Locale.ROOT,
                    "%d,%d,%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.4f,%.4f,%.4f,%.4f,%.0f,%.0f,%.3f,%.2f,%.2f,"
                            + "%.2f,%.2f,%.4f,%.3f,%.3f,%.2f%n",
                    n, f[0], f[1], m, nOut, kq4 * 1e6, kq8 * 1e6, tc4 * 1e6, tc8 * 1e6, quant4 * 1e6, w4a4 * 1e6,
                    w4a8 * 1e6, kq4 / w4a4, kq8 / w4a8, tc4 / w4a4, tc8 / w4a8, bw / 1e9, copyBw / 1e9, bw / copyBw,
                    flops / kq4 / 1e12, flops / tc4 / 1e12, hf4 * 1e6, hf8 * 1e6, hf4 / w4a4, hf4 / tc4,
                    bytes / hf4 / copyBw, flops / hf4 / 1e12));
            return String.format(Locale.ROOT,
                    "%-6d %-8s %5d %6d %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %9.1f %9.1f %9.3f %9.3f %9.3f %9.3f "
                            + "%9.3f %8.2f %7.2f %8.1f %8.2f %8.1f",
                    n, f[0] + "x" + f[1], m, nOut, kq4 * 1e6, kq8 * 1e6, tc4 * 1e6, tc8 * 1e6, hf4 * 1e6, hf8 * 1e6,
                    quant4 * 1e6, w4a4 * 1e6, w4a8 * 1e6, kq4 / w4a4, kq8 / w4a8, tc4 / w4a4, tc8 / w4a8, hf4 / w4a4,
                    hf4 / tc4, bw / copyBw, flops / tc4 / 1e12, bytes / hf4 / copyBw, flops / hf4 / 1e12);
        }
    }

    /** A factor like a calibrated one: the identity plus small Gaussian entries. */
    private static float[] factor(SplittableRandom rnd, int d) {
        float[] p = new float[d * d];
        for (int i = 0; i < p.length; i++) {
            p[i] = (float) ((i % (d + 1) == 0 ? 1.0 : 0.0) + 0.1 * gaussian(rnd) / Math.sqrt(d));
        }
        return p;
    }

    private static double gaussian(SplittableRandom rnd) {
        double u = rnd.nextDouble();
        double v = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }

    /** N x K INT4 weights with random codes and per-channel scales. */
    private static QuantizedTensor randomInt4Weights(Context gpu, SplittableRandom rnd, int nOut, int k) {
        QuantizedTensor w = gpu.allocateQuantized(nOut, k, 4, Granularity.PER_ROW, 0);
        try {
            byte[] codes = new byte[Math.toIntExact(w.values().storageBytes())];
            for (int i = 0; i < codes.length; i++) {
                codes[i] = (byte) rnd.nextInt(256);
            }
            w.values().copyFrom(codes);
            float[] scales = new float[nOut];
            for (int i = 0; i < nOut; i++) {
                scales[i] = 0.01f + 0.001f * (i % 7);
            }
            w.scales().copyFrom(scales);
            return w;
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
    }
}
