package lowbit.bench;

import java.util.Arrays;
import java.util.Random;
import lowbit.Backend;
import lowbit.BitPlaneTensor;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
import lowbit.Tensor;
import lowbit.abq.IntCodes;
import lowbit.abq.WeightQuantizer;

/**
 * CPU throughput of the ABQ-LLM bit-plane GEMM (W2A8, W4A4; {@code lowbit_bitplane_gemm}, the
 * context's best kernel: AVX-512 VPOPCNTDQ where the CPU has it) against lowbit's S8×S8 GEMM (AVX-512
 * VNNI) on the same shapes, all threads, operands already quantized and resident (the GEMM with its
 * fused F32 epilogue only; the per-token activation packing is timed separately). Effective GOP/s =
 * 2·M·N·K / time. A plain timer (warm-up, then the median of repeated runs), not JMH: figures to
 * report, not to assert.
 *
 * <pre>java -cp ... lowbit.bench.BitPlaneCpuBench</pre>
 */
public final class BitPlaneCpuBench {
    private BitPlaneCpuBench() {}

    interface Op {
        void run();
    }

    static double medianSeconds(Op op, double minSeconds) {
        for (int i = 0; i < 3; i++) {
            op.run();
        }
        long t0 = System.nanoTime();
        op.run();
        double one = Math.max(1e-7, (System.nanoTime() - t0) * 1e-9);
        int reps = (int) Math.max(5, Math.min(2000, minSeconds / one));
        double[] t = new double[reps];
        for (int i = 0; i < reps; i++) {
            long s = System.nanoTime();
            op.run();
            t[i] = (System.nanoTime() - s) * 1e-9;
        }
        Arrays.sort(t);
        return t[reps / 2];
    }

    public static void main(String[] args) {
        int[][] shapes = {{1536, 576}, {4096, 4096}};  // {N, K}: SmolLM2-135M MLP up, LLaMA-7B q/k/v/o
        int[] ms = {1, 16, 64};
        Random rnd = new Random(1);
        try (Context ctx = Context.open(Backend.CPU)) {
            System.out.println("# " + lowbit.Lowbit.buildInfo());
            System.out.printf("%-12s %4s  %10s %10s %10s  %12s %12s%n", "N x K", "M", "S8xS8 GOP/s", "W2A8 GOP/s",
                    "W4A4 GOP/s", "pack A8 us", "pack A4 us");
            for (int[] s : shapes) {
                int n = s[0], k = s[1];
                float[] w = new float[n * k];
                for (int i = 0; i < w.length; i++) {
                    w[i] = (float) (rnd.nextGaussian() * 0.02);
                }
                IntCodes w2 = WeightQuantizer.perChannel(2).quantize(w, n, k);
                IntCodes w4 = WeightQuantizer.perChannel(4).quantize(w, n, k);
                try (Tensor wt = ctx.upload(w, n, k);
                     QuantizedTensor w8 = ctx.quantize(wt, 8, Granularity.PER_ROW);
                     BitPlaneTensor p2 = upload(ctx, w2);
                     BitPlaneTensor p4 = upload(ctx, w4)) {
                    for (int m : ms) {
                        float[] x = new float[m * k];
                        for (int i = 0; i < x.length; i++) {
                            x[i] = (float) rnd.nextGaussian();
                        }
                        try (Tensor xt = ctx.upload(x, m, k);
                             QuantizedTensor x8 = ctx.quantize(xt, 8, Granularity.PER_ROW);
                             BitPlaneTensor a8 = ctx.quantizeBitPlanes(xt, 8, true);
                             BitPlaneTensor a4 = ctx.quantizeBitPlanes(xt, 4, true);
                             Tensor y = ctx.allocate(DType.F32, m, n)) {
                            double ops = 2.0 * m * n * k;
                            double tS8 = medianSeconds(() -> ctx.gemmInto(x8, w8, null, y), 0.5);
                            double tW2 = medianSeconds(() -> ctx.gemmBitPlanesInto(a8, p2, null, y), 0.5);
                            double tW4 = medianSeconds(() -> ctx.gemmBitPlanesInto(a4, p4, null, y), 0.5);
                            double tP8 = medianSeconds(() -> ctx.quantizeBitPlanesInto(xt, a8), 0.2);
                            double tP4 = medianSeconds(() -> ctx.quantizeBitPlanesInto(xt, a4), 0.2);
                            System.out.printf("%-12s %4d  %10.1f %10.1f %10.1f  %12.1f %12.1f%n", n + " x " + k, m,
                                    ops / tS8 * 1e-9, ops / tW2 * 1e-9, ops / tW4 * 1e-9, tP8 * 1e6, tP4 * 1e6);
                        }
                    }
                }
            }
        }
    }

    static BitPlaneTensor upload(Context ctx, IntCodes q) {
        return ctx.uploadBitPlanes(q.codes(), q.rows(), q.cols(), q.planes(), q.isSigned(), q.zeroPoints(), q.scales());
    }
}
