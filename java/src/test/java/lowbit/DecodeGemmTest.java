package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The small-M (decode, M = 1..4) path of the CPU GEMM driver: the VNNI GEMV kernel with S8 and
 * in-register S4 weights, the N split over threads, on every ISA level, against {@link Reference}
 * (exact int32, bit-exact epilogue), with poisoned outputs; odd N and K around the kernel's 4-row,
 * 16-column, 64-byte and 128-element boundaries; thread counts 1, 2, 3 and all.
 */
class DecodeGemmTest {
    static Stream<CpuIsa> isas() {
        return CpuKernelTest.isas();
    }

    private static Context open(CpuIsa isa, int threads) {
        Context ctx = Context.open(Backend.CPU);
        ctx.setCpuIsa(isa);
        ctx.setThreads(threads);
        return ctx;
    }

    /** N x K: tiny, row tails (N % 4), K tails (odd, % 64, % 128), and sizes the driver splits over threads. */
    static final int[][] SHAPES = {
        {1, 1}, {3, 5}, {5, 63}, {7, 64}, {17, 65}, {31, 127}, {33, 128}, {63, 129}, {66, 255}, {129, 577},
        {577, 193}, {1537, 577}, {801, 1535}, {2051, 1024}
    };

    @ParameterizedTest
    @MethodSource("isas")
    void smallMIntegerGemmIsExact(CpuIsa isa) {
        for (int threads : new int[] {1, 2, 3, 0}) {
            try (Context ctx = open(isa, threads)) {
                long seed = 1000 + threads;
                for (int m = 1; m <= 4; m++) {
                    for (int[] s : SHAPES) {
                        KernelChecks.gemmS32(ctx, seed++, m, s[0], s[1], DType.S8, DType.S8);
                        KernelChecks.gemmS32(ctx, seed++, m, s[0], s[1], DType.S8, DType.S4);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("isas")
    void smallMLinearMatchesReference(CpuIsa isa) {
        for (int threads : new int[] {1, 2, 0}) {
            try (Context ctx = open(isa, threads)) {
                long seed = 2000 + threads;
                for (int m = 1; m <= 4; m++) {
                    for (int[] s : new int[][] {{97, 257}, {1537, 577}, {576, 1535}}) {
                        for (DType out : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                            KernelChecks.linear(ctx, seed++, m, s[0], s[1], 8, 8, Granularity.PER_ROW, true, out, 0.06);
                            KernelChecks.linear(ctx, seed++, m, s[0], s[1], 8, 4, Granularity.PER_ROW, false, out, 0.25);
                            KernelChecks.linear(ctx, seed++, m, s[0], s[1], 8, 8, Granularity.PER_TENSOR, false, out, 0.15);
                        }
                    }
                }
            }
        }
    }

    /** Every ISA level and thread count gives the same bits as the scalar reference path on one thread. */
    @Test
    void isaLevelsAndThreadCountsAgreeBitForBit() {
        Random rnd = new Random(7);
        int n = 1539, k = 1025;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.05);
        for (int m = 1; m <= 4; m++) {
            float[] x = KernelChecks.activations(rnd, m, k);
            for (int bits : new int[] {8, 4}) {
                float[] want = null;
                for (CpuIsa isa : isas().toArray(CpuIsa[]::new)) {
                    for (int threads : new int[] {1, 2, 0}) {
                        try (Context ctx = open(isa, threads)) {
                            float[] got = linearF32(ctx, x, m, w, n, k, bits);
                            if (want == null) want = got;
                            else assertArrayEquals(want, got, "W" + bits + "A8 M=" + m + " on " + isa + " with " + threads + " threads");
                        }
                    }
                }
            }
        }
    }

    /** Concurrent decode-sized calls from several Java threads share the pool and stay exact. */
    @Test
    void concurrentSmallMCallsAreExact() throws Exception {
        CpuIsa best = Lowbit.cpuIsaBest();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try (Context ctx = open(best, 2)) {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                final long seed = 3000 + t;
                futures.add(pool.submit(() -> {
                    for (int m = 1; m <= 4; m++) {
                        KernelChecks.gemmS32(ctx, seed * 10 + m, m, 1025, 577, DType.S8, seed % 2 == 0 ? DType.S8 : DType.S4);
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) f.get();
        } finally {
            pool.shutdownNow();
        }
    }

    private static float[] linearF32(Context ctx, float[] x, int m, float[] w, int n, int k, int bits) {
        try (Tensor xt = ctx.upload(x, m, k);
                Tensor wt = ctx.upload(w, n, k);
                QuantizedTensor qa = ctx.quantize(xt, 8, Granularity.PER_ROW);
                QuantizedTensor qb = ctx.quantize(wt, bits, Granularity.PER_ROW);
                Tensor y = ctx.allocate(DType.F32, m, n)) {
            KernelChecks.poison(y);
            ctx.gemmInto(qa, qb, null, y);
            float[] got = y.toFloatArray();
            assertEquals(m * n, got.length);
            return got;
        }
    }
}
