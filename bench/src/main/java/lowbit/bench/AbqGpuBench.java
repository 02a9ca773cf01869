package lowbit.bench;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import lowbit.Backend;
import lowbit.BitPlaneTensor;
import lowbit.Context;
import lowbit.DType;
import lowbit.Lowbit;
import lowbit.Tensor;

/**
 * ABQ-LLM bit-plane GEMM benchmark on the GPU ({@code lowbit_bitplane_gemm}, binary tensor cores): W2A8
 * (8-bit asymmetric per-token activations x 2-bit asymmetric per-channel weights), W2*A8 (bit-balanced
 * weights, 3 signed planes) and W4A4 (4-bit asymmetric both sides), against lowbit's own W8A8 ({@code
 * lowbit_gemm_dequant} S8xS8, the configuration GemmBench times) and cuBLAS FP16 ({@code cublasGemmEx})
 * on the same device in the same run. All F16 out, per-token x per-channel scales.
 *
 * <p>Per cell (K, N, M): median us per launch (back-to-back launches, {@link GpuTimer}; every weight set
 * rotated through >= 128 MB of copies so that no shape is served from the 50 MB L2), the speed-ups of
 * W2A8 and W4A4 over FP16 and W8A8, W2A8 TOPS (2·M·N·K / time), the rate at which the packed weight
 * planes are read (bytes of the planes / time) against the device copy bandwidth (read + write) measured
 * in the same run, and the per-token activation packing ({@code lowbit_bitplane_quantize} from F16, 8 and
 * 4 bits) timed on its own, so that a whole layer (pack + GEMM) can be compared with FP16.
 *
 * <p>Times are launch-to-launch: for the smallest cells they may be bound by the host's issue rate
 * (one JNI call per launch) rather than the kernel.
 *
 * <pre>
 * java -cp ... lowbit.bench.AbqGpuBench [--shapes KxN,...] [--m 1,4,...] [--csv out.csv]
 * </pre>
 */
public final class AbqGpuBench {
    static final int[][] DEFAULT_SHAPES = {{4096, 4096}, {4096, 14336}, {14336, 4096}, {8192, 28672}};
    static final int[] DEFAULT_M = {1, 4, 8, 16, 64, 256};
    private static final long ROTATE_BYTES = 128L << 20;

    private AbqGpuBench() {}

    public static void main(String[] args) throws Exception {
        int[][] shapes = DEFAULT_SHAPES;
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
            System.out.println("AbqGpuBench: no CUDA device (" + Lowbit.buildInfo() + "); nothing to measure");
            return;
        }
        List<String> rows = new ArrayList<>();
        StringBuilder csvText = new StringBuilder("m,k,n,w2a8_us,w2sa8_us,w4a4_us,w8a8_us,cublas_f16_us,"
                + "fp16_over_w2a8,w8a8_over_w2a8,fp16_over_w4a4,w8a8_over_w4a4,w2a8_tops,w4a4_tops,"
                + "w2a8_weight_gbps,w2sa8_weight_gbps,w4a4_weight_gbps,copy_gbps,pack_a8_us,pack_a4_us,"
                + "fp16_over_w2a8_layer,fp16_over_w4a4_layer\n");
        try (Context gpu = Context.open(Backend.CUDA)) {
            double copyBw = GemmBench.copyBandwidth(gpu);
            System.out.printf(Locale.ROOT, "AbqGpuBench on %s, %s%ncopy bandwidth (read+write) %.0f GB/s%n",
                    GemmBench.deviceName(), Lowbit.buildInfo(), copyBw / 1e9);
            for (int[] s : shapes) {
                int k = s[0];
                int n = s[1];
                try (GemmProblem.Weights w8 = new GemmProblem.Weights(gpu, n, k, 7);
                     PlaneWeights w2 = PlaneWeights.random(gpu, n, k, 2, false, 21);
                     PlaneWeights w2s = PlaneWeights.random(gpu, n, k, 3, true, 22);
                     PlaneWeights w4 = PlaneWeights.random(gpu, n, k, 4, false, 23)) {
                    for (int m : ms) {
                        try (GemmProblem p = new GemmProblem(gpu, w8, m, 11);
                             Tensor x = gpu.upload(GemmProblem.randomF16(new SplittableRandom(m), (long) m * k),
                                     DType.F16, m, k);
                             BitPlaneTensor a8 = gpu.allocateBitPlanes(m, k, 8, true);
                             BitPlaneTensor a4 = gpu.allocateBitPlanes(m, k, 4, true);
                             Tensor out = gpu.allocate(DType.F16, m, n)) {
                            gpu.quantizeBitPlanesInto(x, a8);
                            gpu.quantizeBitPlanesInto(x, a4);
                            double tW2 = GpuTimer.time(gpu, i -> gpu.gemmBitPlanesInto(a8, w2.get(i), null, out));
                            double tW2s = GpuTimer.time(gpu, i -> gpu.gemmBitPlanesInto(a8, w2s.get(i), null, out));
                            double tW4 = GpuTimer.time(gpu, i -> gpu.gemmBitPlanesInto(a4, w4.get(i), null, out));
                            double tW8 = GpuTimer.time(gpu, i -> p.w8a8(gpu, Context.AUTO, i));
                            double tF = GpuTimer.time(gpu, i -> p.f16(gpu, i));
                            double tP8 = GpuTimer.time(gpu, i -> gpu.quantizeBitPlanesInto(x, a8));
                            double tP4 = GpuTimer.time(gpu, i -> gpu.quantizeBitPlanesInto(x, a4));
                            double ops = 2.0 * m * n * k;
                            double bw2 = w2.bytes / tW2, bw2s = w2s.bytes / tW2s, bw4 = w4.bytes / tW4;
                            rows.add(String.format(Locale.ROOT,
                                    "%4d %6d %6d %8.1f %8.1f %8.1f %8.1f %8.1f  %5.2f %5.2f  %5.2f %5.2f %6.0f"
                                            + "  %5.0f %3.0f%% %5.0f %3.0f%%  %6.1f %6.1f  %5.2f %5.2f",
                                    m, k, n, tW2 * 1e6, tW2s * 1e6, tW4 * 1e6, tW8 * 1e6, tF * 1e6, tF / tW2, tW8 / tW2,
                                    tF / tW4, tW8 / tW4, ops / tW2 / 1e12, bw2 / 1e9, 100 * bw2 / copyBw, bw4 / 1e9,
                                    100 * bw4 / copyBw, tP8 * 1e6, tP4 * 1e6, tF / (tP8 + tW2), tF / (tP4 + tW4)));
                            System.err.println(rows.get(rows.size() - 1));
                            csvText.append(String.format(Locale.ROOT,
                                    "%d,%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%.3f,%.3f,%.3f,%.3f,%.1f,%.1f,%.0f,%.0f,%.0f,%.0f,"
                                            + "%.2f,%.2f,%.3f,%.3f%n",
                                    m, k, n, tW2 * 1e6, tW2s * 1e6, tW4 * 1e6, tW8 * 1e6, tF * 1e6, tF / tW2, tW8 / tW2,
                                    tF / tW4, tW8 / tW4, ops / tW2 / 1e12, ops / tW4 / 1e12, bw2 / 1e9, bw2s / 1e9,
                                    bw4 / 1e9, copyBw / 1e9, tP8 * 1e6, tP4 * 1e6, tF / (tP8 + tW2), tF / (tP4 + tW4)));
                        }
                    }
                }
            }
        }
        System.out.printf(Locale.ROOT, "%n%4s %6s %6s %8s %8s %8s %8s %8s  %-11s  %-11s %6s  %-21s  %-13s  %-11s%n",
                "M", "K", "N", "W2A8 us", "W2*A8 us", "W4A4 us", "W8A8 us", "fp16 us", "W2A8: x16 x8",
                "W4A4: x16 x8", "W2 TOPS", "weights read: W2  W4", "pack A8  A4", "layer: W2 W4");
        rows.forEach(System.out::println);
        System.out.println("(xN: speed-up over FP16 / W8A8; weights read: packed planes GB/s and % of the copy "
                + "bandwidth; pack: lowbit_bitplane_quantize from F16, us; layer: FP16 time / (pack + bit-plane GEMM))");
        if (csv != null) {
            Files.writeString(csv, csvText.toString(), StandardCharsets.UTF_8);
        }
    }

    /**
     * Random bit-plane weights of one width on the device, in copies that together hold >= 128 MB so
     * that launch i (reading copy i mod copies) finds none of them in L2: codes uniform over the width's
     * range (unsigned with a zero point per channel, or signed {-2..2} for the bit-balanced W2*), scales
     * per channel.
     */
    static final class PlaneWeights implements AutoCloseable {
        final long bytes;  // of one copy's planes
        private final List<BitPlaneTensor> copies = new ArrayList<>();

        private PlaneWeights(long bytes) {
            this.bytes = bytes;
        }

        static PlaneWeights random(Context ctx, int n, int k, int bits, boolean bitBalanced, long seed) {
            SplittableRandom rnd = new SplittableRandom(seed);
            int[] codes = new int[Math.multiplyExact(n, k)];
            for (int i = 0; i < codes.length; i++) {
                codes[i] = bitBalanced ? rnd.nextInt(5) - 2 : rnd.nextInt(1 << bits);
            }
            int[] zeros = null;
            if (!bitBalanced) {
                zeros = new int[n];
                for (int j = 0; j < n; j++) {
                    zeros[j] = rnd.nextInt(1 << bits);
                }
            }
            float[] scales = GemmProblem.randomScales(rnd, n);
            BitPlaneTensor first = ctx.uploadBitPlanes(codes, n, k, bits, bitBalanced, zeros, scales);
            PlaneWeights w = new PlaneWeights(first.planes().storageBytes());
            w.copies.add(first);
            try {
                for (long held = w.bytes; held < ROTATE_BYTES; held += w.bytes) {
                    BitPlaneTensor c = ctx.allocateBitPlanes(n, k, bits, !bitBalanced);
                    w.copies.add(c);
                    c.planes().copyFrom(first.planes());
                    c.sums().copyFrom(first.sums());
                    c.scales().copyFrom(first.scales());
                    if (first.hasZeroPoints()) {
                        c.zeroPoints().copyFrom(first.zeroPoints());
                    }
                }
            } catch (RuntimeException e) {
                w.close();
                throw e;
            }
            return w;
        }

        BitPlaneTensor get(int launch) {
            return copies.get(launch % copies.size());
        }

        @Override
        public void close() {
            copies.forEach(BitPlaneTensor::close);
        }
    }
}
