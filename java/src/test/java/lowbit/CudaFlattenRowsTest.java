package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The row kernel of flatten-and-quantize (native/src/cuda/flatten_rows.cu): F16 / BF16 rows in
 * registers, plan units that are the row's own columns streamed, every other unit gathered from a
 * shared-memory copy of the row; given PER_TENSOR / PER_ROW scales and computed PER_ROW (per
 * token). Plans in FlattenPlan's appended order (the layout it is written for and that the dispatch
 * sends to it) and plans a lying hint sends to it (every unit gathered), rows of 8 to 16384 source columns (1, 2 or 4 units per thread, one
 * to sixteen warps, row copies above the 48 KB default of shared memory), more rows than resident
 * blocks, expansions past the unrolled units and trimmed ones: bit-exact with expanding in float32
 * and quantizing (KernelChecks.flattenQuantizePlan), outputs poisoned.
 */
class CudaFlattenRowsTest extends GpuTestBase {

    @Test
    void appendedPlansMatchReference() {
        long seed = 4100;
        for (int srcCols : new int[] {8, 64, 264, 1032, 4096}) {
            for (int rows : new int[] {1, 33}) {
                for (String kind : KernelChecks.PLAN_KINDS) {
                    for (DType in : new DType[] {DType.F16, DType.BF16}) {
                        for (int bits : new int[] {8, 4}) {
                            KernelChecks.flattenQuantizePlan(gpu, seed++, rows, srcCols, kind, 0, bits, in, true);
                        }
                    }
                }
            }
        }
    }

    /**
     * Plans that are not in the appended order (adjacent copies, the row reversed) sent to the row
     * kernel by a hint that claims they are (identity prefix = the source width): every unit that is
     * not its own columns gathers, so the codes and scales are still the reference's, bit for bit.
     */
    @Test
    void plansTheHintMisdescribesStayExact() {
        Random rnd = new Random(4400);
        for (int srcCols : new int[] {64, 1032, 4096}) {
            for (String kind : new String[] {"every4th", "split3", "offsets", "reverse"}) {
                int[] copies = KernelChecks.planCopies(kind.equals("reverse") ? "identity" : kind, srcCols);
                int k = Arrays.stream(copies).sum();
                int[] src = new int[k];
                float[] mult = new float[k];
                for (int c = 0, j = 0; c < srcCols; c++) {
                    for (int i = 0; i < copies[c]; i++, j++) {
                        src[j] = kind.equals("reverse") ? srcCols - 1 - c : c;
                        mult[j] = (float) Math.exp(rnd.nextGaussian() * 0.3) / copies[c];
                    }
                }
                for (DType in : new DType[] {DType.F16, DType.BF16}) {
                    int rows = 9;
                    float[] x = KernelChecks.roundTo(in, KernelChecks.activations(rnd, rows, srcCols));
                    float[] expanded = KernelChecks.expand(x, rows, srcCols, src, mult);
                    try (Tensor t = KernelChecks.upload(gpu, in, x, rows, srcCols);
                            ExpansionPlan plan = CudaKernelTest.uncheckedPlan(gpu, src, mult, srcCols, srcCols)) {
                        for (int bits : new int[] {8, 4}) {
                            String what = kind + " " + in + " " + srcCols + "->" + k + " " + bits + "-bit";
                            Reference.Quantized want = Reference.quantize(expanded, rows, k, bits, Granularity.PER_ROW, 0, null);
                            try (QuantizedTensor q = gpu.allocateQuantized(rows, k, bits, Granularity.PER_ROW, 0)) {
                                KernelChecks.poison(q.values());
                                KernelChecks.poison(q.scales());
                                gpu.flattenQuantizeInto(t, plan, q);
                                assertArrayEquals(want.scales, q.scales().toFloatArray(), "per-token scales, " + what);
                                KernelChecks.assertCodes(want.q, q, rows, k, bits, "per-token " + what);
                            }
                            for (Granularity g : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_ROW}) {
                                float[] given = Reference.quantize(expanded, rows, k, bits, g, 0, null).scales;
                                for (int i = 0; i < given.length; i++) {
                                    given[i] *= i % 2 == 0 ? 0.75f : 1f; // some codes saturate
                                }
                                Reference.Quantized wantGiven = Reference.quantize(expanded, rows, k, bits, g, 0, given);
                                try (QuantizedTensor q = gpu.allocateQuantized(rows, k, bits, g, 0)) {
                                    q.scales().copyFrom(given);
                                    KernelChecks.poison(q.values());
                                    gpu.flattenQuantizeWithScales(t, plan, q);
                                    KernelChecks.assertCodes(wantGiven.q, q, rows, k, bits, "given " + g + " " + what);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * The widest rows the kernel takes (14336 and 16384 source columns: 448 and 512 threads, 56 and
     * 64 KB of row copies), one past them (16392: the other kernels), more rows than can be
     * resident at once (1500 rows of 4096: each block walks several), plans trimmed below the source
     * width and padded to three times it (units past the unrolled ones, scattered gathers).
     */
    @Test
    void wideRowsManyRowsAndUnusualWidthsMatchReference() {
        long seed = 4700;
        for (int srcCols : new int[] {14336, 16384, 16392}) {
            for (String kind : new String[] {"every4th", "split5"}) {
                for (int bits : new int[] {8, 4}) {
                    KernelChecks.flattenQuantizePlan(gpu, seed++, 3, srcCols, kind, 0, bits, DType.F16, true);
                }
            }
        }
        KernelChecks.flattenQuantizePlan(gpu, seed++, 1500, 4096, "every4th", 0, 8, DType.F16, true);
        KernelChecks.flattenQuantizePlan(gpu, seed++, 1500, 4096, "split3", 0, 4, DType.BF16, true);
        for (int srcCols : new int[] {64, 1032}) {
            for (int outCols : new int[] {srcCols / 2 + 8, 3 * srcCols, 4 * srcCols + 8}) {
                for (DType in : new DType[] {DType.F16, DType.BF16}) {
                    for (int bits : new int[] {8, 4}) {
                        KernelChecks.flattenQuantizePlan(gpu, seed++, 9, srcCols, "split3", outCols, bits, in, true);
                    }
                }
            }
        }
    }

    /**
     * A non-finite value of a split channel (read by its own column and by an appended copy) and a
     * later one: reported at the row and the first expanded column that reads it, per token, per
     * tensor and with given scales; the context stays usable.
     */
    @Test
    void nonFiniteInASplitChannelIsReportedAtItsFirstColumn() {
        int rows = 3, srcCols = 64, outCols = 72;
        int[] src = new int[outCols];
        float[] mult = new float[outCols];
        for (int j = 0; j < outCols; j++) { // channels 40 and 41 split in two; padding reads channel 5 times 0.25
            src[j] = j < srcCols ? j : j == 64 ? 40 : j == 65 ? 41 : 5;
            mult[j] = j == 40 || j == 41 || j == 64 || j == 65 ? 0.5f : j < srcCols ? 1f : 0.25f;
        }
        float[] x = new float[rows * srcCols];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i);
        }
        x[2 * srcCols + 40] = Float.POSITIVE_INFINITY;
        x[2 * srcCols + 63] = Float.NaN;
        for (DType in : new DType[] {DType.F16, DType.BF16}) {
            try (Tensor t = KernelChecks.upload(gpu, in, KernelChecks.roundTo(in, x), rows, srcCols);
                    ExpansionPlan plan = gpu.uploadPlan(src, mult, srcCols)) {
                for (int bits : new int[] {8, 4}) {
                    for (Granularity g : new Granularity[] {Granularity.PER_ROW, Granularity.PER_TENSOR}) {
                        try (QuantizedTensor q = gpu.allocateQuantized(rows, outCols, bits, g, 0)) {
                            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                                gpu.flattenQuantizeInto(t, plan, q);
                                gpu.synchronize();
                            }, in + " " + g + " computed");
                            assertTrue(e.getMessage().contains("row 2") && e.getMessage().contains("column 40"), e.getMessage());
                        }
                        try (QuantizedTensor q = gpu.allocateQuantized(rows, outCols, bits, g, 0)) {
                            float[] scales = new float[g == Granularity.PER_ROW ? rows : 1];
                            Arrays.fill(scales, 0.25f);
                            q.scales().copyFrom(scales);
                            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                                gpu.flattenQuantizeWithScales(t, plan, q);
                                gpu.synchronize();
                            }, in + " " + g + " given");
                            assertTrue(e.getMessage().contains("row 2") && e.getMessage().contains("column 40"), e.getMessage());
                        }
                    }
                }
            }
        }
        KernelChecks.flattenQuantizePlan(gpu, 5, 3, 64, "every4th", 0, 8, DType.F16, true); // still usable
    }

    /** Given scales that are not finite or not positive: the smallest bad one is named, per tensor and per row. */
    @Test
    void badGivenScalesAreReported() {
        int rows = 4, srcCols = 64;
        float[] x = KernelChecks.roundTo(DType.F16, KernelChecks.activations(new Random(3), rows, srcCols));
        int[] src = new int[srcCols + 8];
        float[] mult = new float[srcCols + 8];
        for (int j = 0; j < src.length; j++) {
            src[j] = j < srcCols ? j : 8 * (j - srcCols);
            mult[j] = 1f;
        }
        try (Tensor t = KernelChecks.upload(gpu, DType.F16, x, rows, srcCols); ExpansionPlan plan = gpu.uploadPlan(src, mult, srcCols)) {
            for (Granularity g : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_ROW}) {
                try (QuantizedTensor q = gpu.allocateQuantized(rows, src.length, 8, g, 0)) {
                    float[] scales = g == Granularity.PER_TENSOR ? new float[] {Float.NaN} : new float[] {0.1f, 0.1f, 0f, -1f};
                    q.scales().copyFrom(scales);
                    LowbitException e = assertThrows(LowbitException.class, () -> {
                        gpu.flattenQuantizeWithScales(t, plan, q);
                        gpu.synchronize();
                    }, g.toString());
                    String want = g == Granularity.PER_TENSOR ? "scale at index 0" : "scale at index 2";
                    assertTrue(e.getMessage().contains(want), g + ": " + e.getMessage());
                }
            }
            // and then a good call on the same context gives the reference's codes
            try (QuantizedTensor q = gpu.allocateQuantized(rows, src.length, 8, Granularity.PER_TENSOR, 0)) {
                q.scales().copyFrom(new float[] {0.02f});
                KernelChecks.poison(q.values());
                gpu.flattenQuantizeWithScales(t, plan, q);
                float[] expanded = KernelChecks.expand(x, rows, srcCols, src, mult);
                Reference.Quantized want = Reference.quantize(expanded, rows, src.length, 8, Granularity.PER_TENSOR, 0,
                        new float[] {0.02f});
                KernelChecks.assertCodes(want.q, q, rows, src.length, 8, "after the bad scales");
            }
        }
    }
}
