package lowbit;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link KronPrecision#HALF} (the Kronecker transform on the FP16 tensor cores, kron_quantize_half.cu)
 * against the exact kernel on the same GPU, within the bounds {@code lowbit.h} states for it (as
 * {@link KronQuantizeCudaTest} checks TF32): every scale within 2e-3 of the exact one, every code
 * within 1 of the exact code, at most 3% of the 4-bit and 20% of the 8-bit codes off, and every code
 * written (codes are poisoned off the grid first, scales with NaN). Covers FlatQuant's factor pairs
 * (64 x 64 with many tokens per block, 24 x 24, 32 x 48, 86 x 128, 112 x 128), 128 x 128 (largest
 * tiles), pairs padded from odd sizes (5 x 3, 1 x 7, 9 x 13) and with n2 % 8 != 0 (8 x 12), all
 * three input dtypes, odd token counts, rows far outside F16's range (massive activations, tiny
 * rows: the per-token power-of-two scaling; rows on both sides of the default kernel's limits for
 * folding 2^(e + a + b), 2^-78 and 2^104), the asynchronous report of non-finite values (x, factors,
 * a product that overflows); the
 * default kernel's token groups (many tokens, uneven strides, one token per pair) and its unmasked
 * instantiation for pairs without padding (48 x 64, 16 x 64, 64 x 128, 32 x 128). Whichever kernel
 * LOWBIT_KRON_HALF_IMPL selects (unset: kron_half_groups.cu; "v1": kron_quantize_half.cu's) is tested.
 */
class KronQuantizeHalfCudaTest extends GpuTestBase {
    private static final DType[] TYPES = {DType.F16, DType.BF16, DType.F32};

    @Test
    void halfIsCloseToTheExactKernel() {
        int[][] cases = {{2048, 64, 64}, {1000, 24, 24}, {333, 32, 48}, {129, 86, 128}, {70, 112, 128},
            {40, 128, 128}, {17, 5, 3}, {3, 1, 7}, {45, 9, 13}, {33, 8, 12}};
        long seed = 900;
        for (int[] c : cases) {
            for (DType in : TYPES) {
                for (int bits : new int[] {4, 8}) {
                    Random rnd = new Random(seed++);
                    float[] x = KernelChecks.activations(rnd, c[0], c[1] * c[2]);
                    KronQuantizeCudaTest.closeToExact(rnd, x, c[0], c[1], c[2], bits, in, KronPrecision.HALF, "");
                }
            }
        }
    }

    /** Token counts that leave a tile partly empty (1, 7, 33), including a single token. */
    @Test
    void oddTokenCounts() {
        int[][] pairs = {{64, 64}, {86, 128}, {24, 24}, {112, 128}};
        long seed = 1000;
        for (int[] f : pairs) {
            for (int rows : new int[] {1, 7, 33}) {
                for (int bits : new int[] {4, 8}) {
                    Random rnd = new Random(seed++);
                    DType in = TYPES[(int) (seed % 3)];
                    float[] x = KernelChecks.activations(rnd, rows, f[0] * f[1]);
                    KronQuantizeCudaTest.closeToExact(rnd, x, rows, f[0], f[1], bits, in, KronPrecision.HALF, "");
                }
            }
        }
    }

    /**
     * The default kernel (kron_half_groups.cu) gives each group of p1 / 16 warps one token at a time
     * and strides the rows over the groups of a persistent grid: token counts large enough for
     * several groups per block (up to 15 when p1 = 16) and no multiple of them, so groups end after
     * different numbers of tokens; factor pairs with 1 to 8 warps per group, Y strips of 1 to 8
     * chunks (16 x 128, 128 x 16, 8 x 16, 48 x 80), and rows whose length is no multiple of 8
     * elements (element-wise staging and scaling: 5 x 3, 9 x 13).
     */
    @Test
    void manyTokenGroups() {
        int[][] cases = {{2001, 8, 16}, {1499, 16, 128}, {1100, 128, 16}, {4099, 24, 24}, {601, 64, 64},
            {533, 48, 80}, {3001, 5, 3}, {1601, 9, 13}};
        long seed = 1200;
        for (int[] c : cases) {
            for (int bits : new int[] {4, 8}) {
                Random rnd = new Random(seed++);
                DType in = TYPES[(int) (seed % 3)];
                float[] x = KernelChecks.activations(rnd, c[0], c[1] * c[2]);
                KronQuantizeCudaTest.closeToExact(rnd, x, c[0], c[1], c[2], bits, in, KronPrecision.HALF, "");
            }
        }
    }

    /** One token for every factor pair above: a single group in a single block. */
    @Test
    void oneTokenEveryPair() {
        int[][] pairs = {{64, 64}, {24, 24}, {32, 48}, {86, 128}, {112, 128}, {128, 128}, {5, 3}, {1, 7}, {9, 13},
            {8, 12}, {16, 128}, {128, 16}};
        long seed = 1300;
        for (int[] f : pairs) {
            for (DType in : TYPES) {
                Random rnd = new Random(seed++);
                float[] x = KernelChecks.activations(rnd, 1, f[0] * f[1]);
                KronQuantizeCudaTest.closeToExact(rnd, x, 1, f[0], f[1], seed % 2 == 0 ? 4 : 8, in,
                        KronPrecision.HALF, " (one token)");
            }
        }
    }

    /**
     * Rows with massive activations (|x| ~ 3e4 in a few channels, near F16's largest finite value
     * 65504; 1e8 for F32 and BF16 inputs, beyond it) and rows of tiny values (1e-6, where F16's
     * subnormals would lose most bits): without the per-token scaling the products would overflow
     * to Inf (reported as non-finite) or lose their precision; with it they stay within the
     * tolerances.
     */
    @Test
    void rowsOutsideTheF16RangeAreScaled() {
        long seed = 1100;
        int[][] pairs = {{64, 64}, {86, 128}, {24, 24}};
        for (int[] f : pairs) {
            for (DType in : TYPES) {
                for (int bits : new int[] {4, 8}) {
                    Random rnd = new Random(seed++);
                    int rows = 37, n = f[0] * f[1];
                    float[] x = KernelChecks.activations(rnd, rows, n);
                    float big = in == DType.F16 ? 3.0e4f : 1.0e8f;
                    for (int r = 0; r < rows; r++) {
                        if (r % 3 == 0) {  // massive: a few channels, both signs
                            for (int k = 0; k < 4; k++) {
                                x[r * n + rnd.nextInt(n)] = (k % 2 == 0 ? big : -big) * (0.5f + 0.5f * rnd.nextFloat());
                            }
                        } else if (r % 3 == 1 && in != DType.F16) {  // tiny (F16 inputs cannot hold these)
                            for (int c = 0; c < n; c++) {
                                x[r * n + c] *= 1e-6f;
                            }
                        }
                    }
                    KronQuantizeCudaTest.closeToExact(rnd, x, rows, f[0], f[1], bits, in, KronPrecision.HALF,
                            " (massive / tiny rows)");
                    gpu.synchronize();  // no non-finite report: nothing overflowed
                }
            }
        }
    }

    /**
     * Rows whose power-of-two exponent 2^(e + a + b) (y = Y' 2^(e + a + b), lowbit.h) lands on each
     * side of the limits where the default kernel changes path: above 2^104 (|x| ~ 1e35: y could
     * overflow, so the NaN/Inf probe runs and every Y' is scaled first), just below it (~1e33), in
     * [2^-78, 2^104] far down (~1e-20: the factor folded into max / min and 1 / scale) and below 2^-78
     * (~1e-27: Y' scaled first). F32 and BF16 inputs (F16 cannot hold them); all within the
     * tolerances of the exact kernel, and nothing reported as non-finite.
     */
    @Test
    void tokenExponentsAroundTheFoldLimits() {
        float[] rowScale = {1e33f, 1e31f, 1e-22f, 1e-29f, 1f};
        int[][] pairs = {{64, 64}, {24, 24}, {86, 128}, {6, 10}};
        long seed = 1400;
        for (int[] f : pairs) {
            for (DType in : new DType[] {DType.F32, DType.BF16}) {
                for (int bits : new int[] {4, 8}) {
                    Random rnd = new Random(seed++);
                    int rows = 23, n = f[0] * f[1];
                    float[] x = KernelChecks.activations(rnd, rows, n);
                    for (int r = 0; r < rows; r++) {
                        for (int c = 0; c < n; c++) {
                            x[r * n + c] *= rowScale[r % rowScale.length];
                        }
                    }
                    KronQuantizeCudaTest.closeToExact(rnd, x, rows, f[0], f[1], bits, in, KronPrecision.HALF,
                            " (rows scaled by 1e33 .. 1e-29)");
                    gpu.synchronize();  // no non-finite report
                }
            }
        }
    }

    /** Finite x and factors whose product overflows float (|4 x| > 3.4e38 in row 3): an Inf y is reported. */
    @Test
    void overflowingProductsAreReported() {
        int n1 = 64, n2 = 64, n = n1 * n2, rows = 9;
        Random rnd = new Random(23);
        float[] x = KernelChecks.activations(rnd, rows, n);
        for (int c = 0; c < 16; c++) {
            x[3 * n + 7 * c + 5] = (c % 2 == 0 ? 2.0e38f : -2.0e38f);
        }
        float[] p = new float[n1 * n1];
        for (int i = 0; i < n1; i++) {
            p[i * n1 + i] = 2f;  // 2 I (x) 2 I: y = 4 x
        }
        try (Tensor xt = gpu.upload(x, rows, n);
                Tensor p1t = gpu.upload(p, n1, n1);
                Tensor p2t = gpu.upload(p, n2, n2);
                QuantizedTensor q = gpu.allocateQuantized(rows, n, 4, Granularity.PER_ROW, 0)) {
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q, KronPrecision.HALF);
            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, gpu::synchronize);
            assertTrue(e.getMessage().contains("row 3,") && e.getMessage().contains("Inf"), e.getMessage());
            gpu.synchronize();  // reported once

            // Without the overflowing row: nothing to report.
            for (int c = 0; c < 16; c++) {
                x[3 * n + 7 * c + 5] = 1f;
            }
            xt.copyFrom(x);
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q, KronPrecision.HALF);
            gpu.synchronize();
        }
    }

    /**
     * Factor pairs whose Y strips have no padding entry (n1 % 16 == 0, n2 = 64 or 128 with n1 <= 64):
     * the default kernel runs its unmasked instantiation there, which zeroes no padding and writes
     * the codes without bounds checks. 48 x 64 (three warps a group, fewer than the instantiation
     * allows), 16 x 64, 64 x 128 and 32 x 128, odd token counts (a block's groups end unevenly, one
     * token: a single group), all input types, 4- and 8-bit codes.
     */
    @Test
    void paddingFreeStrips() {
        int[][] pairs = {{48, 64}, {16, 64}, {64, 128}, {32, 128}};
        long seed = 1400;
        for (int[] f : pairs) {
            for (int rows : new int[] {1, 5, 1037}) {
                for (int bits : new int[] {4, 8}) {
                    Random rnd = new Random(seed++);
                    DType in = TYPES[(int) (seed % 3)];
                    float[] x = KernelChecks.activations(rnd, rows, f[0] * f[1]);
                    KronQuantizeCudaTest.closeToExact(rnd, x, rows, f[0], f[1], bits, in, KronPrecision.HALF,
                            " (no padding)");
                }
            }
        }
    }

    /** The non-finite reports of the unmasked instantiation (64 x 128): an x, then a factor. */
    @Test
    void nonFiniteValuesWithoutPadding() {
        int n1 = 64, n2 = 128, n = n1 * n2, rows = 23;
        Random rnd = new Random(23);
        float[] x = KernelChecks.activations(rnd, rows, n);
        x[13 * n + 8000] = Float.NEGATIVE_INFINITY;
        x[20 * n + 5] = Float.NaN;
        float[] p1 = KronQuantizeTest.factor(rnd, n1);
        float[] p2 = KronQuantizeTest.factor(rnd, n2);
        try (Tensor xt = gpu.upload(x, rows, n);
                Tensor p1t = gpu.upload(p1, n1, n1);
                Tensor p2t = gpu.upload(p2, n2, n2);
                QuantizedTensor q = gpu.allocateQuantized(rows, n, 8, Granularity.PER_ROW, 0)) {
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q, KronPrecision.HALF);
            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, gpu::synchronize);
            assertTrue(e.getMessage().contains("row 13, column 8000") && e.getMessage().contains("-Inf"),
                    e.getMessage());
            gpu.synchronize();

            xt.copyFrom(KernelChecks.activations(rnd, rows, n));
            p2[n2 * n2 - 1] = Float.POSITIVE_INFINITY;
            p2t.copyFrom(p2);
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q, KronPrecision.HALF);
            e = assertThrows(NonFiniteInputException.class, gpu::synchronize);
            assertTrue(e.getMessage().contains("row 0,"), e.getMessage());
            gpu.synchronize();
        }
    }

    @Test
    void nonFiniteValuesAreReportedAsynchronously() {
        int n1 = 64, n2 = 64, n = 4096, rows = 40;
        Random rnd = new Random(19);
        float[] x = KernelChecks.activations(rnd, rows, n);
        x[31 * n + 400] = Float.POSITIVE_INFINITY;
        x[17 * n + 301] = Float.NaN;
        x[17 * n + 3000] = Float.NEGATIVE_INFINITY;
        float[] p1 = KronQuantizeTest.factor(rnd, n1);
        float[] p2 = KronQuantizeTest.factor(rnd, n2);
        try (Tensor xt = gpu.upload(x, rows, n);
                Tensor p1t = gpu.upload(p1, n1, n1);
                Tensor p2t = gpu.upload(p2, n2, n2);
                QuantizedTensor q = gpu.allocateQuantized(rows, n, 4, Granularity.PER_ROW, 0)) {
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q, KronPrecision.HALF);
            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, gpu::synchronize);
            assertTrue(e.getMessage().contains("row 17, column 301") && e.getMessage().contains("NaN"), e.getMessage());
            gpu.synchronize();  // reported once, then the record is clear

            // Only an Inf, in a later row: that one is named.
            x[17 * n + 301] = 1f;
            x[17 * n + 3000] = 1f;
            xt.copyFrom(x);
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q, KronPrecision.HALF);
            e = assertThrows(NonFiniteInputException.class, gpu::synchronize);
            assertTrue(e.getMessage().contains("row 31, column 400") && e.getMessage().contains("+Inf"), e.getMessage());

            // Finite x, a NaN in P1: y is not finite from row 0 on.
            xt.copyFrom(KernelChecks.activations(rnd, rows, n));
            p1[5] = Float.NaN;
            p1t.copyFrom(p1);
            gpu.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q, KronPrecision.HALF);
            e = assertThrows(NonFiniteInputException.class, () -> q.scales().toFloatArray());
            assertTrue(e.getMessage().contains("row 0,"), e.getMessage());
            gpu.synchronize();
        }
    }
}
