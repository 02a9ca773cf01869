package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The CUDA kron_quantize kernel against the Java simulation of {@code lowbit.h}'s arithmetic and
 * against the CPU backend, bit for bit (codes and scales), for every factor pair of {@link
 * KronQuantizeTest}, both widths and all input dtypes; token counts that exercise one or many
 * tokens per block and the grid-stride loop; asynchronous reporting of non-finite values. The TF32
 * tensor-core variant against the exact kernel, within the bounds lowbit.h states.
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

    /**
     * {@link KronPrecision#TF32} (the two products on the TF32 tensor cores) against the exact
     * kernel on the same GPU: every scale within 2e-3 of the exact one, every code within 1 of the
     * exact code, and few codes off (at most 3% of the 4-bit codes, 20% of the 8-bit ones: a TF32
     * operand carries a relative error of ~5e-4, which moves y across a rounding boundary only when
     * it lies that close to one); codes poisoned off the grid first (-128, or -8 nibbles), so a
     * code never written shows. Factor pairs padded to 16 (24 x 24, 86 x 128, 5 x 3, 1 x 7), several tokens
     * per block (64 x 64), and 112 x 128 and 128 x 128, which on an H100 do not fit shared memory
     * and run the exact kernel.
     */
    @Test
    void tf32IsCloseToTheExactKernel() {
        int[][] cases = {{2048, 64, 64}, {1000, 24, 24}, {333, 32, 48}, {129, 86, 128}, {70, 112, 128}, {17, 5, 3},
            {40, 128, 128}, {3, 1, 7}};
        DType[] types = {DType.F16, DType.BF16, DType.F32};
        long seed = 700;
        int t = 0;
        for (int[] c : cases) {
            for (int bits : new int[] {4, 8}) {
                DType in = types[t++ % 3];
                Random rnd = new Random(seed++);
                float[] x = KernelChecks.activations(rnd, c[0], c[1] * c[2]);
                closeToExact(rnd, x, c[0], c[1], c[2], bits, in, KronPrecision.TF32, "");
            }
        }
    }

    /**
     * Runs x (rows x n1·n2, rounded to {@code in}) through the exact kernel and the tensor-core
     * arithmetic {@code mode} (TF32 or HALF) with the same random factors (drawn from rnd) and checks
     * mode's scales and codes against the exact ones: every scale within 2e-3, every code within 1
     * and on the grid (codes are poisoned off it first), at most 3% (4-bit) / 20% (8-bit) off.
     */
    static void closeToExact(Random rnd, float[] xRaw, int rows, int n1, int n2, int bits, DType in,
            KronPrecision mode, String note) {
        int n = n1 * n2;
        float[] x = KernelChecks.roundTo(in, xRaw);
        float[] p1 = KronQuantizeTest.factor(rnd, n1);
        float[] p2 = KronQuantizeTest.factor(rnd, n2);
        String what = in + " " + rows + " rows, " + n1 + "x" + n2 + ", " + bits + "-bit" + note;
        float[][] scales = new float[2][];
        int[][] codes = new int[2][];
        KronPrecision[] modes = {KronPrecision.EXACT, mode};
        for (int b = 0; b < 2; b++) {
            try (Tensor xt = KernelChecks.upload(gpu, in, x, rows, n);
                    Tensor p1t = gpu.upload(p1, n1, n1);
                    Tensor p2t = gpu.upload(p2, n2, n2);
                    QuantizedTensor q = gpu.allocateQuantized(rows, n, bits, Granularity.PER_ROW, 0)) {
                byte[] offGrid = new byte[(int) q.values().storageBytes()];
                Arrays.fill(offGrid, (byte) (bits == 8 ? 0x80 : 0x88));  // -128, or two -8 nibbles
                q.values().copyFrom(offGrid);
                KernelChecks.poison(q.scales());
                gpu.kronQuantizeInto(xt, p1t, p2t, 0.95f, 0.9f, q, modes[b]);
                scales[b] = q.scales().toFloatArray();
                codes[b] = codesOf(q.values().toByteArray(), rows, n, (int) q.values().ld(), bits);
            }
        }
        int qmax = bits == 8 ? 127 : 7;
        for (int r = 0; r < rows; r++) {
            float se = scales[0][r], sm = scales[1][r];
            assertTrue(Math.abs(sm - se) <= 2e-3 * se, what + ": row " + r + " scale " + sm + " vs exact " + se);
        }
        int off = 0;
        for (int i = 0; i < rows * n; i++) {
            int ce = codes[0][i], cm = codes[1][i];
            assertTrue(Math.abs(cm) <= qmax, what + ": code " + i + " = " + cm + " is off the grid (never written?)");
            assertTrue(Math.abs(cm - ce) <= 1, what + ": code " + i + " = " + cm + " vs exact " + ce);
            off += cm != ce ? 1 : 0;
        }
        double share = (double) off / ((double) rows * n);
        assertTrue(share <= (bits == 4 ? 0.03 : 0.20), what + ": " + off + " codes (" + share + ") differ");
    }

    /** The codes of a rows x n S8 or packed S4 matrix stored with leading dimension ld (elements). */
    static int[] codesOf(byte[] storage, int rows, int n, int ld, int bits) {
        int[] c = new int[rows * n];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < n; j++) {
                if (bits == 8) {
                    c[r * n + j] = storage[r * ld + j];
                } else {
                    int b = storage[r * (ld / 2) + j / 2] & 0xff;
                    int nib = (j % 2 == 0 ? b : b >> 4) & 0xf;
                    c[r * n + j] = nib >= 8 ? nib - 16 : nib;
                }
            }
        }
        return c;
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
