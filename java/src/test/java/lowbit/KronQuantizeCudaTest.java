package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The CUDA kron_quantize kernel against the Java simulation of {@code lowbit.h}'s arithmetic and
 * against the CPU backend, bit for bit (codes and scales), for every factor pair of {@link
 * KronQuantizeTest}, both widths and all input dtypes; token counts that exercise one or many
 * tokens per block and the grid-stride loop; asynchronous reporting of non-finite values.
 */
class KronQuantizeCudaTest extends GpuTestBase {
    @Test
    void matchesSimulationForEveryFactorPair() {
        long seed = 500;
        DType[] types = {DType.F32, DType.F16, DType.BF16};
        int t = 0;
        for (int[] f : KronQuantizeTest.factorPairs()) {
            int n = f[0] * f[1];
            for (int rows : n >= 4096 ? new int[] {1, 5} : new int[] {1, 17, 130}) {
                for (int bits : new int[] {8, 4}) {
                    KronQuantizeTest.check(gpu, seed++, rows, f[0], f[1], bits, types[t++ % 3], 0.9f, 0.75f);
                }
            }
            KronQuantizeTest.check(gpu, seed++, 3, f[0], f[1], 4, DType.F16, 1f, 1f);
        }
    }

    /** Large token counts (many tiles per block, grid-stride) against the CPU backend. */
    @Test
    void matchesCpuBackendOnManyTokens() {
        long seed = 600;
        int[][] cases = {{2048, 64, 64}, {1000, 24, 24}, {333, 32, 48}, {129, 86, 128}, {70, 112, 128}, {40, 128, 128},
            {4097, 3, 5}};
        for (int[] c : cases) {
            for (int bits : new int[] {4, 8}) {
                compareWithCpu(seed++, c[0], c[1], c[2], bits, bits == 4 ? DType.F16 : DType.BF16, 0.93f, 0.87f);
            }
        }
    }

    private static void compareWithCpu(long seed, int rows, int n1, int n2, int bits, DType in, float clipMax,
            float clipMin) {
        Random rnd = new Random(seed);
        int n = n1 * n2;
        float[] x = KernelChecks.roundTo(in, KernelChecks.activations(rnd, rows, n));
        float[] p1 = KronQuantizeTest.factor(rnd, n1);
        float[] p2 = KronQuantizeTest.factor(rnd, n2);
        String what = in + " " + rows + " rows, " + n1 + "x" + n2 + ", " + bits + "-bit";
        float[][] scales = new float[2][];
        byte[][] values = new byte[2][];
        Context[] ctxs = {cpu, gpu};
        for (int b = 0; b < 2; b++) {
            Context ctx = ctxs[b];
            try (Tensor xt = KernelChecks.upload(ctx, in, x, rows, n);
                    Tensor p1t = ctx.upload(p1, n1, n1);
                    Tensor p2t = ctx.upload(p2, n2, n2);
                    QuantizedTensor q = ctx.allocateQuantized(rows, n, bits, Granularity.PER_ROW, 0)) {
                KernelChecks.poison(q.values());
                KernelChecks.poison(q.scales());
                ctx.kronQuantizeInto(xt, p1t, p2t, clipMax, clipMin, q);
                scales[b] = q.scales().toFloatArray();
                values[b] = q.values().toByteArray();
            }
        }
        assertArrayEquals(scales[0], scales[1], "scales, CUDA vs CPU, " + what);
        assertArrayEquals(values[0], values[1], "codes (every stored byte, padding included), CUDA vs CPU, " + what);
    }

    @Test
    void nonFiniteValuesAreReportedAsynchronously() {
        int n1 = 24, n2 = 24, n = 576, rows = 40;
        Random rnd = new Random(9);
        float[] x = KernelChecks.activations(rnd, rows, n);
        x[31 * n + 400] = Float.POSITIVE_INFINITY;
        x[17 * n + 301] = Float.NaN;
        float[] p1 = KronQuantizeTest.factor(rnd, n1);
        float[] p2 = KronQuantizeTest.factor(rnd, n2);
        try (Tensor xt = gpu.upload(x, rows, n);
                Tensor p1t = gpu.upload(p1, n1, n1);
                Tensor p2t = gpu.upload(p2, n2, n2);
                QuantizedTensor q = gpu.allocateQuantized(rows, n, 4, Granularity.PER_ROW, 0)) {
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q);
            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, gpu::synchronize);
            assertTrue(e.getMessage().contains("row 17, column 301") && e.getMessage().contains("NaN"), e.getMessage());
            gpu.synchronize(); // reported once, then the record is clear

            // Finite x, a NaN in P1: y is not finite from row 0 on.
            xt.copyFrom(KernelChecks.activations(rnd, rows, n));
            p1[5] = Float.NaN;
            p1t.copyFrom(p1);
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q);
            e = assertThrows(NonFiniteInputException.class, () -> q.scales().toFloatArray());
            assertTrue(e.getMessage().contains("row 0,"), e.getMessage());
            gpu.synchronize();
        }
    }
}
