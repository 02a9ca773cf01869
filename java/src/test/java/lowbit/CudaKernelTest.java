package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * The CUDA backend against the same references as the CPU backend (bit-exact integer parts and F32
 * epilogue), and against the CPU backend on larger shapes. Skipped, and counted as skipped, on a
 * host without a CUDA device.
 */
class CudaKernelTest extends GpuTestBase {
    @Test
    void quantizeMatchesReference() {
        long seed = 1;
        for (int[] s : CpuKernelTest.QUANT_SHAPES) {
            for (int bits : new int[] {8, 4}) {
                for (Granularity g : Granularity.values()) {
                    int group = g == Granularity.PER_GROUP ? CpuKernelTest.largestGroup(s[1]) : 0;
                    for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                        KernelChecks.quantize(gpu, seed++, s[0], s[1], bits, g, group, in);
                    }
                }
            }
        }
    }

    @Test
    void integerGemmIsExact() {
        long seed = 100;
        for (int[] s : CpuKernelTest.GEMM_SHAPES) {
            KernelChecks.gemmS32(gpu, seed++, s[0], s[1], s[2], DType.S8, DType.S8);
            KernelChecks.gemmS32(gpu, seed++, s[0], s[1], s[2], DType.S8, DType.S4);
            KernelChecks.gemmS32(gpu, seed++, s[0], s[1], s[2], DType.S4, DType.S4);
        }
        KernelChecks.gemmS32(gpu, 7, 97, 211, 1536, DType.S8, DType.S8);
        KernelChecks.gemmS32(gpu, 8, 1, 577, 1535, DType.S8, DType.S4);
        KernelChecks.gemmS32(gpu, 9, 31, 64, 4097, DType.S4, DType.S4);
    }

    @Test
    void quantizedLinearMatchesReference() {
        long seed = 200;
        for (int[] s : new int[][] {{1, 96, 257}, {13, 31, 384}, {40, 65, 1001}}) {
            for (DType out : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                KernelChecks.linear(gpu, seed++, s[0], s[1], s[2], 8, 8, Granularity.PER_ROW, true, out, 0.06);
                KernelChecks.linear(gpu, seed++, s[0], s[1], s[2], 8, 4, Granularity.PER_ROW, false, out, 0.25);
                KernelChecks.linear(gpu, seed++, s[0], s[1], s[2], 8, 8, Granularity.PER_TENSOR, true, out, 0.15);
                KernelChecks.linear(gpu, seed++, s[0], s[1], s[2], 4, 4, Granularity.PER_ROW, false, out, 0.6);
            }
        }
    }

    @Test
    void flattenQuantizeMatchesReference() {
        long seed = 300;
        for (int[] s : new int[][] {{1, 1}, {3, 7}, {17, 33}, {40, 577}, {300, 4096}}) {
            for (int bits : new int[] {8, 4}) {
                for (Granularity g : Granularity.values()) {
                    KernelChecks.flattenQuantize(gpu, seed++, s[0], s[1], bits, g, DType.F32);
                }
                KernelChecks.flattenQuantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_TENSOR, DType.F16);
                KernelChecks.flattenQuantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_ROW, DType.BF16);
            }
        }
    }

    /**
     * The quantize kernels over row shapes that pick different paths (quantize_rowwise.cu's
     * register-resident kernel and its generic fallback, the one-kernel PER_TENSOR path): short
     * rows, LLaMA-width and the longest register-resident rows (16384 columns) and one past them,
     * computed PER_GROUP with 1 to 32 units per group, every input dtype and both output widths.
     */
    @Test
    void onePassQuantizeMatchesReference() {
        long seed = 900;
        int[][] shapes = {{37, 8}, {9, 24}, {33, 64}, {5, 200}, {6, 4096}, {3, 14336}, {2, 16384}, {2, 16392}};
        for (int[] s : shapes) {
            for (int bits : new int[] {8, 4}) {
                for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    KernelChecks.quantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_ROW, 0, in);
                    KernelChecks.quantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_TENSOR, 0, in);
                }
                for (int group : new int[] {8, 16, 64, 256}) {
                    if (s[1] % group == 0) {
                        KernelChecks.quantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_GROUP, group, DType.F16);
                    }
                }
            }
        }
    }

    /** Given scales through the one-pass kernel: the values the computed scales gave, again. */
    @Test
    void staticScalesReproduceComputedOnes() {
        Random rnd = new Random(77);
        int[][] shapes = {{17, 8}, {40, 577}, {64, 4096}, {3, 14336}};
        for (int[] s : shapes) {
            float[] x = KernelChecks.activations(rnd, s[0], s[1]);
            for (Granularity g : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_ROW, Granularity.PER_GROUP}) {
                int group = g == Granularity.PER_GROUP ? (s[1] % 64 == 0 ? 64 : s[1] % 8 == 0 ? 8 : 1) : 0;
                for (int bits : new int[] {8, 4}) {
                    for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                        try (Tensor t = KernelChecks.upload(gpu, in, KernelChecks.roundTo(in, x), s[0], s[1]);
                                QuantizedTensor q = gpu.quantize(t, bits, g, group)) {
                            byte[] want = q.values().toByteArray();
                            KernelChecks.poison(q.values());
                            gpu.quantizeWithScales(t, q);
                            assertArrayEquals(want, q.values().toByteArray(),
                                    "static " + g + " " + in + " " + bits + "-bit " + s[0] + "x" + s[1]);
                        }
                    }
                }
            }
        }
    }

    /** Flatten plans into LLaMA-width rows (staged source rows), both dtypes of half width. */
    @Test
    void flattenQuantizeLongRowsMatchesReference() {
        long seed = 1300;
        for (int[] s : new int[][] {{9, 4096}, {3, 11000}, {70, 40}}) {
            for (int bits : new int[] {8, 4}) {
                for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    KernelChecks.flattenQuantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_ROW, in);
                    KernelChecks.flattenQuantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_TENSOR, in);
                }
                KernelChecks.flattenQuantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_GROUP, DType.F16);
            }
        }
    }

    /** The first non-finite element in row-major order is reported, whatever order rows are walked in. */
    /**
     * Per-token rows across the register-resident kernel's shapes (quantize_rowwise.cu: 1, 2, 4 or 8
     * units of 8 columns per thread, 32-256 threads; taken with LOWBIT_ROWQUANT=legacy, otherwise
     * these rows run quantize_per_token.cu, see PerTokenQuantizeCudaTest) and just past them (16392
     * columns: the two-pass kernel), every input type and both widths, bit-exact with the
     * reference; and the first non-finite element of a wide row reported by its row and column.
     */
    @Test
    void registerResidentPerTokenRowsMatchReference() {
        int[] colsList = {8, 72, 1024, 1032, 4096, 8200, 14336, 16384, 16392};
        long seed = 900;
        for (int cols : colsList) {
            for (int rows : new int[] {1, 7, 300}) {
                for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    for (int bits : new int[] {8, 4}) {
                        KernelChecks.quantize(gpu, seed++, rows, cols, bits, Granularity.PER_ROW, 0, in);
                    }
                }
            }
        }
        int rows = 9, cols = 14336;
        short[] x = new short[rows * cols];
        x[4 * cols + 14000] = Half.fromFloat(Float.NEGATIVE_INFINITY);
        x[4 * cols + 9001] = Half.fromFloat(Float.NaN);
        x[8 * cols + 2] = Half.fromFloat(Float.NaN);
        try (Tensor t = gpu.upload(x, DType.F16, rows, cols)) {
            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                try (QuantizedTensor q = gpu.quantize(t, 8, Granularity.PER_ROW)) {
                    gpu.synchronize();
                }
            });
            assertTrue(e.getMessage().contains("row 4") && e.getMessage().contains("column 9001"), e.getMessage());
        }
    }

    /**
     * Flatten plans on both of the quantize kernels' paths -- whole units of 8 expanded columns
     * (vector plan loads, one store; here 72 columns with zero-multiplier padding, q rows aligned)
     * and column pairs (65 columns: odd S4 rows) -- report a non-finite source element at the first
     * expanded column that reads it, static and per-token, S8 and S4; random plans give the
     * reference's bits, and static scales reproduce the codes the computed ones gave.
     */
    @Test
    void nonFiniteThroughAPlanIsReportedAtItsExpandedColumn() {
        int rows = 3, srcCols = 64;
        for (int pad : new int[] {0, 7}) {
            int outCols = srcCols + 1 + pad;
            int[] src = new int[outCols];
            float[] mult = new float[outCols];
            for (int j = 0, c = 0; c < srcCols; c++) { // column 40 split in two halves; padding reads column 0 times 0
                src[j] = c;
                mult[j++] = c == 40 ? 0.5f : 1f;
                if (c == 40) {
                    src[j] = c;
                    mult[j++] = 0.5f;
                }
            }
            float[] x = new float[rows * srcCols];
            for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i);
            x[2 * srcCols + 40] = Float.POSITIVE_INFINITY;
            x[2 * srcCols + 63] = Float.NaN;
            try (Tensor t = gpu.upload(x, rows, srcCols); ExpansionPlan plan = gpu.uploadPlan(src, mult, srcCols)) {
                for (int bits : new int[] {8, 4}) {
                    for (Granularity g : new Granularity[] {Granularity.PER_ROW, Granularity.PER_TENSOR}) {
                        try (QuantizedTensor q = gpu.allocateQuantized(rows, outCols, bits, g, 0)) {
                            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                                gpu.flattenQuantizeInto(t, plan, q);
                                gpu.synchronize();
                            }, g + " computed, " + outCols + " columns");
                            assertTrue(e.getMessage().contains("row 2") && e.getMessage().contains("column 40"), e.getMessage());
                        }
                    }
                    try (QuantizedTensor q = gpu.allocateQuantized(rows, outCols, bits, Granularity.PER_TENSOR, 0)) {
                        q.scales().copyFrom(new float[] {0.25f});
                        NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                            gpu.flattenQuantizeWithScales(t, plan, q);
                            gpu.synchronize();
                        });
                        assertTrue(e.getMessage().contains("row 2") && e.getMessage().contains("column 40"), e.getMessage());
                    }
                }
            }
        }
        long seed = 77;
        for (int cols : new int[] {61, 64, 1000, 4096}) {
            for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                for (int bits : new int[] {8, 4}) {
                    for (Granularity g : new Granularity[] {Granularity.PER_ROW, Granularity.PER_TENSOR}) {
                        KernelChecks.flattenQuantize(gpu, seed++, 5, cols, bits, g, in);
                    }
                }
            }
        }
        // static scales (FlattenQuant's calibrated per-tensor scale) give the codes the computed scale gave
        Random rnd = new Random(5);
        int[] src = new int[4104];
        float[] mult = new float[4104];
        for (int j = 0; j < src.length; j++) {
            src[j] = j < 4096 ? j : rnd.nextInt(4096);
            mult[j] = j < 4096 ? 1f : 0.5f;
        }
        float[] x = KernelChecks.roundTo(DType.F16, KernelChecks.activations(rnd, 33, 4096));
        for (int bits : new int[] {8, 4}) {
            try (Tensor t = KernelChecks.upload(gpu, DType.F16, x, 33, 4096);
                    ExpansionPlan plan = gpu.uploadPlan(src, mult, 4096);
                    QuantizedTensor computed = gpu.allocateQuantized(33, 4104, bits, Granularity.PER_TENSOR, 0);
                    QuantizedTensor given = gpu.allocateQuantized(33, 4104, bits, Granularity.PER_TENSOR, 0)) {
                gpu.flattenQuantizeInto(t, plan, computed);
                given.scales().copyFrom(computed.scales().toFloatArray());
                KernelChecks.poison(given.values());
                gpu.flattenQuantizeWithScales(t, plan, given);
                assertArrayEquals(computed.values().toByteArray(), given.values().toByteArray(), "static " + bits + "-bit flatten");
            }
        }
    }

    /**
     * Given scales below the values' range (FlattenQuant's calibrated static scale meets a larger
     * activation at inference): saturating codes, values exactly on rounding ties (power-of-two
     * scales keep x * mult / s exact), values one float step either side of a tie, huge and
     * subnormal values, a tiny and a huge scale per row. The flatten kernel's reciprocal quantizer
     * (quant_math.cuh) must give the correctly rounded division's codes, bit for bit, on every
     * granularity it takes (PER_TENSOR, PER_ROW, PER_COLUMN) and input dtype.
     */
    @Test
    void givenScalesSaturateAndRoundTiesAsTheDivision() {
        Random rnd = new Random(4242);
        int rows = 11, srcCols = 1024;
        int[] copies = KernelChecks.planCopies("every4th", srcCols);
        int outCols = 0;
        for (int c : copies) outCols += c;
        int[] src = new int[outCols];
        float[] mult = new float[outCols];
        for (int c = 0, j = 0; c < srcCols; c++) {
            for (int i = 0; i < copies[c]; i++, j++) {
                src[j] = c;
                mult[j] = copies[c] == 1 ? 1f : 0.5f;  // exact: ties stay ties
            }
        }
        for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            for (int bits : new int[] {8, 4}) {
                int qmax = (1 << (bits - 1)) - 1;
                float[] x = new float[rows * srcCols];
                for (int i = 0; i < x.length; i++) {
                    float k = rnd.nextInt(2 * qmax + 9) - qmax - 4;  // codes up to 4 past qmax either side
                    switch (rnd.nextInt(6)) {
                        case 0 -> x[i] = k + 0.5f;                                     // a tie (times 2 for split copies)
                        case 1 -> x[i] = Math.nextUp(k + 0.5f);
                        case 2 -> x[i] = Math.nextDown(k + 0.5f);
                        case 3 -> x[i] = (float) (rnd.nextGaussian() * qmax * 3);      // a third saturates
                        case 4 -> x[i] = rnd.nextBoolean() ? 6.0e4f * (rnd.nextBoolean() ? 1 : -1) : 1e-6f * rnd.nextFloat();
                        default -> x[i] = 2 * k + 1;                                    // a tie after a split's 0.5
                    }
                }
                x = KernelChecks.roundTo(in, x);
                float[] expanded = KernelChecks.expand(x, rows, srcCols, src, mult);
                for (Granularity g : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_ROW, Granularity.PER_COLUMN}) {
                    int n = (int) g.scaleCount(rows, outCols, 0);
                    float[] given = new float[n];
                    for (int s = 0; s < n; s++) {
                        int pick = rnd.nextInt(5);
                        given[s] = pick == 0 ? 1e-30f : pick == 1 ? 3e30f : pick == 2 ? 0.37f * (1 + rnd.nextFloat()) : pick == 3 ? 0.5f : 1f;
                    }
                    if (g == Granularity.PER_TENSOR) given[0] = 1f;
                    Reference.Quantized want = Reference.quantize(expanded, rows, outCols, bits, g, 0, given);
                    String what = "given " + g + " scales, " + in + " " + bits + "-bit";
                    try (Tensor t = KernelChecks.upload(gpu, in, x, rows, srcCols);
                            ExpansionPlan plan = gpu.uploadPlan(src, mult, srcCols);
                            QuantizedTensor q = gpu.allocateQuantized(rows, outCols, bits, g, 0)) {
                        q.scales().copyFrom(given);
                        KernelChecks.poison(q.values());
                        gpu.flattenQuantizeWithScales(t, plan, q);
                        int[] got = bits == 8 ? KernelChecks.fromS8(q.values().toByteArray())
                                : Reference.unpackS4(q.values().toByteArray(), rows, outCols);
                        assertArrayEquals(want.q, got, what);
                    }
                }
            }
        }
    }

    /**
     * Flatten plans through every case of the windowed gathers (plan_window.cuh: runs at every
     * offset, repeats from splits into 2, 3 and 5 copies, the identity, rows whose last units run
     * into the row end, x rows not 16-byte aligned: 61 and 1030 columns) and of the static
     * one-thread-per-unit kernel (flatten_apply.cu: several column blocks at 1030 and 1032 columns),
     * on 1, 7 and 33 rows, every input type and both widths; then expanded widths that are not a multiple
     * of 8 (a partial last unit, q rows not aligned for vector stores) and padded plans (scalar
     * gathers). Bit-exact with the float32 expansion quantized by the reference, outputs poisoned.
     */
    @Test
    void flattenPlansOfEveryShapeMatchReference() {
        long seed = 1700;
        for (int rows : new int[] {1, 7, 33}) {
            for (int srcCols : new int[] {64, 61, 1030, 1032}) {
                for (String kind : KernelChecks.PLAN_KINDS) {
                    for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                        for (int bits : new int[] {8, 4}) {
                            KernelChecks.flattenQuantizePlan(gpu, seed++, rows, srcCols, kind, 0, bits, in);
                        }
                    }
                }
            }
        }
        for (int outCols : new int[] {5, 61, 67, 72, 77}) {
            for (String kind : new String[] {"identity", "offsets", "split3"}) {
                for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    for (int bits : new int[] {8, 4}) {
                        KernelChecks.flattenQuantizePlan(gpu, seed++, 7, 64, kind, outCols, bits, in);
                    }
                }
            }
        }
    }

    /**
     * Plans that read x's row backwards, every third column, or in a random order, over 2056 and
     * 3000 source columns (x rows 16-byte aligned for every input type): the staged kernel
     * (flatten_staged.cu) stages a block's sources in reverse, or finds them beyond the span it
     * stages and gathers those from global memory. Given PER_TENSOR / PER_ROW / PER_COLUMN scales,
     * 1 and 6 rows, every input type and both widths: bit-exact with the float32 expansion
     * quantized by the reference, outputs poisoned.
     */
    @Test
    void flattenPlansThatReadFarApartMatchReference() {
        long seed = 2900;
        for (String kind : new String[] {"reverse", "stride3", "shuffle"}) {
            for (int srcCols : new int[] {2056, 3000}) {
                for (int rows : new int[] {1, 6}) {
                    for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                        for (int bits : new int[] {8, 4}) {
                            KernelChecks.flattenQuantizeFarPlan(gpu, seed++, rows, srcCols, kind, bits, in);
                        }
                    }
                }
            }
        }
    }

    /**
     * A plan with entries the Java API would refuse, written straight into device buffers, with the
     * identity-prefix hint {@code prefix} (which picks the CUDA kernel; it may claim what the
     * entries are not).
     */
    static ExpansionPlan uncheckedPlan(Context ctx, int[] src, float[] mult, long srcCols, long prefix) {
        Tensor index = ctx.allocate(DType.S32, 1, src.length);
        index.copyFrom(src);
        return new ExpansionPlan(index, ctx.upload(mult, 1, mult.length), srcCols, prefix);
    }

    /**
     * Invalid plan entries (a run that crosses the source row's end, a negative index, non-finite
     * multipliers inside otherwise windowed units) are reported by their smallest entry on every
     * quantize path of a plan, as the CPU backend reports them; a non-finite source value read
     * through a window is reported at its row and source column.
     */
    @Test
    void invalidPlanEntriesAreReportedOnEveryPath() {
        int rows = 5;
        int srcCols = 64;
        int k = 80;
        for (int variant = 0; variant < 4; variant++) {
            int[] src = new int[k];
            float[] mult = new float[k];
            for (int j = 0; j < k; j++) {
                // 0..63 the identity, 64..71 a run crossing the row end (60..67), 72..79 the run 8..15
                src[j] = j < 64 ? j : j < 72 ? j - 4 : j - 64;
                mult[j] = 0.5f + (j % 5) * 0.25f;
            }
            int want = 68;
            if (variant == 1) {
                mult[21] = Float.NaN;
                want = 21;
            } else if (variant == 2) {
                src[3] = -1;
                mult[21] = Float.NaN;
                want = 3;
            } else if (variant == 3) {
                for (int j = 64; j < 72; j++) {
                    src[j] = j - 8; // 56..63: valid
                }
                mult[75] = Float.POSITIVE_INFINITY;
                want = 75;
            }
            String entry = "flatten plan entry " + want + " (source column " + src[want];
            float[] x = KernelChecks.activations(new Random(variant), rows, srcCols);
            for (DType in : new DType[] {DType.F32, DType.F16}) {
                for (int bits : new int[] {8, 4}) {
                    for (Context ctx : new Context[] {gpu, cpu}) {
                      for (long hint : new long[] {0, srcCols}) { // srcCols: the row kernel (flatten_rows.cu) for F16
                        try (Tensor t = KernelChecks.upload(ctx, in, KernelChecks.roundTo(in, x), rows, srcCols);
                                ExpansionPlan plan = uncheckedPlan(ctx, src, mult, srcCols, hint)) {
                            for (Granularity g : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_ROW,
                                    Granularity.PER_COLUMN}) {
                                try (QuantizedTensor q = ctx.allocateQuantized(rows, k, bits, g, 0)) {
                                    float[] scales = new float[Math.toIntExact(q.scales().rows() * q.scales().cols())];
                                    Arrays.fill(scales, 0.05f);
                                    q.scales().copyFrom(scales);
                                    String what = (ctx == gpu ? "CUDA " : "CPU ") + in + " " + bits + "-bit " + g + " variant " + variant
                                            + " hint " + hint;
                                    LowbitException e = assertThrows(LowbitException.class, () -> {
                                        ctx.flattenQuantizeWithScales(t, plan, q);
                                        ctx.synchronize();
                                    }, "given " + what);
                                    assertTrue(e.getMessage().contains(entry), "given " + what + ": " + e.getMessage());
                                    if (g != Granularity.PER_COLUMN) {
                                        e = assertThrows(LowbitException.class, () -> {
                                            ctx.flattenQuantizeInto(t, plan, q);
                                            ctx.synchronize();
                                        }, "computed " + what);
                                        assertTrue(e.getMessage().contains(entry), "computed " + what + ": " + e.getMessage());
                                    }
                                }
                            }
                        }
                      }
                    }
                }
            }
        }
        // A NaN read through windowed units (F16 / BF16 / F32: the "offsets" plan's runs), per token,
        // per tensor and static: reported at its row and source column, not a later one.
        int[] copies = KernelChecks.planCopies("offsets", srcCols);
        int[] src = new int[Arrays.stream(copies).sum()];
        float[] mult = new float[src.length];
        for (int c = 0, j = 0; c < srcCols; c++) {
            for (int i = 0; i < copies[c]; i++, j++) {
                src[j] = c;
                mult[j] = 1f / copies[c];
            }
        }
        float[] x = KernelChecks.activations(new Random(9), rows, srcCols);
        x[3 * srcCols + 45] = Float.NaN;
        x[3 * srcCols + 50] = Float.POSITIVE_INFINITY;
        x[4 * srcCols + 2] = Float.NEGATIVE_INFINITY;
        for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            try (Tensor t = KernelChecks.upload(gpu, in, KernelChecks.roundTo(in, x), rows, srcCols);
                    ExpansionPlan plan = gpu.uploadPlan(src, mult, srcCols)) {
                for (int bits : new int[] {8, 4}) {
                    for (Granularity g : new Granularity[] {Granularity.PER_ROW, Granularity.PER_TENSOR}) {
                        try (QuantizedTensor q = gpu.allocateQuantized(rows, src.length, bits, g, 0)) {
                            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                                gpu.flattenQuantizeInto(t, plan, q);
                                gpu.synchronize();
                            });
                            assertTrue(e.getMessage().contains("row 3") && e.getMessage().contains("column 45"),
                                    in + " " + g + ": " + e.getMessage());
                        }
                    }
                    try (QuantizedTensor q = gpu.allocateQuantized(rows, src.length, bits, Granularity.PER_TENSOR, 0)) {
                        q.scales().copyFrom(new float[] {0.25f});
                        NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                            gpu.flattenQuantizeWithScales(t, plan, q);
                            gpu.synchronize();
                        });
                        assertTrue(e.getMessage().contains("row 3") && e.getMessage().contains("column 45"),
                                in + " static: " + e.getMessage());
                    }
                }
            }
        }
        KernelChecks.flattenQuantizePlan(gpu, 5, 3, 64, "offsets", 0, 8, DType.F16); // the context is still usable
    }

    @Test
    void firstNonFiniteOfLongRowsIsReported() {
        int rows = 40;
        int cols = 4096;
        short[] x = new short[rows * cols];
        x[7 * cols + 3500] = Half.fromFloat(Float.POSITIVE_INFINITY);
        x[7 * cols + 3001] = Half.fromFloat(Float.NaN);
        x[20 * cols + 5] = Half.fromFloat(Float.NaN);
        x[39 * cols + 1] = Half.fromFloat(Float.NEGATIVE_INFINITY);
        for (Granularity g : Granularity.values()) {
            try (Tensor t = gpu.upload(x, DType.F16, rows, cols)) {
                NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                    try (QuantizedTensor q = gpu.quantize(t, 8, g, 128)) {
                        gpu.synchronize();
                    }
                });
                assertTrue(e.getMessage().contains("row 7") && e.getMessage().contains("column 3001"),
                        g + ": " + e.getMessage());
            }
        }
        KernelChecks.gemmS32(gpu, 3, 5, 7, 9, DType.S8, DType.S8);
    }

    /**
     * PER_TENSOR with a computed scale on the one-kernel cooperative path (quantize_tensor_dynamic.cu
     * takes every compact tensor with cols % 8 == 0): fewer units of 8 columns than a block has
     * threads (1x8, 3x8, 7x8: one block, most threads idle), odd row counts up to 4095 (hundreds of
     * blocks whose ranges start mid-row, and 4095x4104 F32 / 4095x14336
     * F16: tensors larger than the H100's L2), LLaMA widths, every input type and both widths:
     * scale and codes bit-exact with the reference (and so with the CPU backend and the four-step
     * path, which LOWBIT_TENSOR_QUANT=legacy forces).
     */
    @Test
    void perTensorOneKernelMatchesReference() {
        long seed = 2000;
        int[][] shapes = {{1, 8}, {3, 8}, {7, 8}, {4095, 8}, {1, 4104}, {7, 4104}, {4095, 4104}, {1, 14336}, {7, 14336},
            {33, 14336}};
        for (int[] s : shapes) {
            for (int bits : new int[] {8, 4}) {
                for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    KernelChecks.quantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_TENSOR, 0, in);
                }
            }
        }
        KernelChecks.quantize(gpu, seed, 4095, 14336, 8, Granularity.PER_TENSOR, 0, DType.F16);
    }

    /**
     * The one-kernel PER_TENSOR path with amax == 0 (+0 and -0 inputs) or a subnormal amax whose
     * quotient by qmax underflows: the scale is 1 and every code 0, as lowbit.h and the CPU backend
     * say.
     */
    @Test
    void perTensorOneKernelZeroAmaxGivesScaleOne() {
        for (int[] s : new int[][] {{1, 8}, {7, 4104}, {300, 4096}}) {
            float[] zeros = new float[s[0] * s[1]];
            float[] tiny = new float[s[0] * s[1]];
            for (int i = 0; i < zeros.length; i++) {
                zeros[i] = i % 3 == 0 ? -0f : 0f;
                tiny[i] = i % 2 == 0 ? Float.MIN_VALUE : -Float.MIN_VALUE;  // amax / 7 and / 127 round to 0
            }
            for (int bits : new int[] {8, 4}) {
                for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    quantizePerTensorExactly(zeros, s[0], s[1], bits, in, 1f);
                }
                quantizePerTensorExactly(tiny, s[0], s[1], bits, DType.F32, 1f);
            }
        }
    }

    /** Quantizes x (already representable in `in`) PER_TENSOR on the GPU: the reference's bits, and the scale wanted. */
    private static void quantizePerTensorExactly(float[] x, int rows, int cols, int bits, DType in, float wantScale) {
        String what = in + " " + rows + "x" + cols + " " + bits + "-bit PER_TENSOR";
        Reference.Quantized want = Reference.quantize(x, rows, cols, bits, Granularity.PER_TENSOR, 0, null);
        assertArrayEquals(new float[] {wantScale}, want.scales, "the reference's scale of " + what);
        try (Tensor t = KernelChecks.upload(gpu, in, x, rows, cols);
                QuantizedTensor q = gpu.allocateQuantized(rows, cols, bits, Granularity.PER_TENSOR, 0)) {
            KernelChecks.poison(q.values());
            KernelChecks.poison(q.scales());
            gpu.quantizeInto(t, q);
            assertArrayEquals(want.scales, q.scales().toFloatArray(), "scale of " + what);
            byte[] packed = q.values().toByteArray();
            int[] got = bits == 8 ? KernelChecks.fromS8(packed) : Reference.unpackS4(packed, rows, cols);
            assertArrayEquals(want.q, got, "values of " + what);
        }
    }

    /**
     * The one-kernel PER_TENSOR path reports the first non-finite element in row-major order, as
     * the four-step path does, although its threads walk their units backward: two findings one
     * thread's stride apart (512 units of 8 columns) in the middle of a 4095x4104 tensor, later
     * ones elsewhere, and findings in the first units of the tensor (block 0's range, quantized
     * last); every input type, S8 and S4.
     */
    @Test
    void perTensorOneKernelReportsFirstNonFinite() {
        int rows = 4095, cols = 4104;
        long mid = 2100L * cols + 4096;
        long[][] cases = {
            {mid, mid + 512 * 8, 4000L * cols + 17, mid + 1, 2100, 4096},  // {NaN, -Inf, NaN, +Inf} -> row 2100, col 4096
            {3L * cols + 8, 1L * cols + 12, 3000L * cols + 5, 2L * cols, 1, 12},
        };
        for (long[] c : cases) {
            for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                float[] x = KernelChecks.roundTo(in, KernelChecks.activations(new Random(c[0] + in.ordinal()), rows, cols));
                x[(int) c[0]] = Float.NaN;
                x[(int) c[1]] = Float.NEGATIVE_INFINITY;
                x[(int) c[2]] = Float.NaN;
                x[(int) c[3]] = Float.POSITIVE_INFINITY;
                for (int bits : new int[] {8, 4}) {
                    try (Tensor t = KernelChecks.upload(gpu, in, x, rows, cols)) {
                        NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                            try (QuantizedTensor q = gpu.quantize(t, bits, Granularity.PER_TENSOR)) {
                                gpu.synchronize();
                            }
                        }, in + " " + bits + "-bit");
                        assertTrue(e.getMessage().contains("row " + c[4] + ",") && e.getMessage().contains("column " + c[5]),
                                in + " " + bits + "-bit: " + e.getMessage());
                    }
                }
            }
        }
        KernelChecks.quantize(gpu, 5, 7, 4104, 8, Granularity.PER_TENSOR, 0, DType.F16);  // the context stays usable
    }

    @Test
    void dgqGemmMatchesReference() {
        int[][] shapes = {{1, 7, 128, 32}, {5, 13, 192, 64}, {17, 9, 256, 128}, {70, 130, 384, 128}, {3, 5, 96, 32}};
        for (int[] s : shapes) {
            for (boolean asym : new boolean[] {false, true}) {
                DgqKernelTest.check(gpu, "CUDA", s[0], s[1], s[2], s[3], asym);
            }
        }
    }

    /** Large shapes: CUDA and CPU backends agree bit for bit. */
    @Test
    void agreesWithCpuOnLargeShapes() {
        Random rnd = new Random(42);
        int m = 300;
        int k = 4096;
        int n = 1000;
        float[] x = KernelChecks.activations(rnd, m, k);
        float[] w = KernelChecks.activations(rnd, n, k);
        for (Granularity g : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_ROW}) {
            for (int wBits : new int[] {8, 4}) {
                try (Tensor xg = gpu.upload(x, m, k);
                        Tensor wg = gpu.upload(w, n, k);
                        Tensor xc = cpu.upload(x, m, k);
                        Tensor wc = cpu.upload(w, n, k);
                        QuantizedTensor qxg = gpu.quantize(xg, 8, g);
                        QuantizedTensor qwg = gpu.quantize(wg, wBits, Granularity.PER_ROW);
                        QuantizedTensor qxc = cpu.quantize(xc, 8, g);
                        QuantizedTensor qwc = cpu.quantize(wc, wBits, Granularity.PER_ROW);
                        Tensor yg = gpu.gemm(qxg, qwg, null, DType.F32);
                        Tensor yc = cpu.gemm(qxc, qwc, null, DType.F32)) {
                    assertArrayEquals(qxc.values().toByteArray(), qxg.values().toByteArray(), "activations " + g);
                    assertArrayEquals(qwc.values().toByteArray(), qwg.values().toByteArray(), "weights W" + wBits);
                    assertArrayEquals(yc.toFloatArray(), yg.toFloatArray(), "W" + wBits + "A8 " + g + " output");
                }
            }
        }
    }

    @Test
    void nonFiniteInputIsReportedBySynchronize() {
        float[] x = new float[64 * 300];
        x[5 * 300 + 17] = Float.NaN;
        for (Granularity g : Granularity.values()) {
            try (Tensor t = gpu.upload(x, 64, 300)) {
                NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                    try (QuantizedTensor q = gpu.quantize(t, 8, g, 100)) {
                        gpu.synchronize();
                    }
                });
                assertTrue(e.getMessage().contains("row 5") && e.getMessage().contains("column 17"), e.getMessage());
            }
        }
        // The context stays usable after the error was reported.
        KernelChecks.gemmS32(gpu, 3, 5, 7, 9, DType.S8, DType.S8);
    }

    @Test
    void threadsShareTheGpuContext() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> jobs = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                final long seed = 500 + t;
                jobs.add(pool.submit(() -> {
                    for (int i = 0; i < 10; i++) {
                        KernelChecks.gemmS32(gpu, seed * 100 + i, 17, 33, 250, DType.S8, DType.S4);
                    }
                    return null;
                }));
            }
            for (Future<?> f : jobs) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
