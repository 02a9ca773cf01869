package lowbit;

import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every CPU kernel on every instruction-set level this machine has, against {@link Reference}:
 * bit-exact integer parts, FP64 relative-error bounds, odd shapes, poisoned outputs.
 */
class CpuKernelTest {
    static Stream<CpuIsa> isas() {
        CpuIsa best = Lowbit.cpuIsaBest();
        return Stream.of(CpuIsa.values()).filter(i -> i.code <= best.code);
    }

    private static Context open(CpuIsa isa) {
        Context ctx = Context.open(Backend.CPU);
        ctx.setCpuIsa(isa);
        return ctx;
    }

    static final int[][] QUANT_SHAPES = {{1, 1}, {1, 7}, {3, 5}, {17, 33}, {64, 130}, {5, 1000}};

    @ParameterizedTest
    @MethodSource("isas")
    void quantizeMatchesReference(CpuIsa isa) {
        try (Context ctx = open(isa)) {
            long seed = 1;
            for (int[] s : QUANT_SHAPES) {
                for (int bits : new int[] {8, 4}) {
                    for (Granularity g : Granularity.values()) {
                        int group = g == Granularity.PER_GROUP ? largestGroup(s[1]) : 0;
                        for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                            KernelChecks.quantize(ctx, seed++, s[0], s[1], bits, g, group, in);
                        }
                    }
                }
            }
        }
    }

    /** A group size that divides cols and is not the whole row where possible. */
    static int largestGroup(int cols) {
        for (int g : new int[] {128, 64, 32, 5, 3}) {
            if (cols % g == 0 && g < cols) {
                return g;
            }
        }
        return cols;
    }

    static final int[][] GEMM_SHAPES = {
        {1, 1, 1}, {1, 37, 67}, {5, 3, 129}, {33, 17, 200}, {64, 64, 256}, {7, 130, 1000}, {2, 300, 33}, {65, 19, 511}
    };

    @ParameterizedTest
    @MethodSource("isas")
    void integerGemmIsExact(CpuIsa isa) {
        try (Context ctx = open(isa)) {
            long seed = 100;
            for (int[] s : GEMM_SHAPES) {
                KernelChecks.gemmS32(ctx, seed++, s[0], s[1], s[2], DType.S8, DType.S8);
                KernelChecks.gemmS32(ctx, seed++, s[0], s[1], s[2], DType.S8, DType.S4);
                KernelChecks.gemmS32(ctx, seed++, s[0], s[1], s[2], DType.S4, DType.S4);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("isas")
    void quantizedLinearMatchesReference(CpuIsa isa) {
        try (Context ctx = open(isa)) {
            long seed = 200;
            for (int[] s : new int[][] {{1, 96, 257}, {13, 31, 384}, {40, 65, 1001}}) {
                for (DType out : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    KernelChecks.linear(ctx, seed++, s[0], s[1], s[2], 8, 8, Granularity.PER_ROW, true, out, 0.06);
                    KernelChecks.linear(ctx, seed++, s[0], s[1], s[2], 8, 4, Granularity.PER_ROW, false, out, 0.25);
                    KernelChecks.linear(ctx, seed++, s[0], s[1], s[2], 8, 8, Granularity.PER_TENSOR, true, out, 0.15);
                    KernelChecks.linear(ctx, seed++, s[0], s[1], s[2], 4, 4, Granularity.PER_ROW, false, out, 0.6);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("isas")
    void isaLevelsAgreeOnLargerShapes(CpuIsa isa) {
        try (Context ctx = open(isa)) {
            KernelChecks.gemmS32(ctx, 7, 97, 211, 1536, DType.S8, DType.S8);
            KernelChecks.gemmS32(ctx, 8, 1, 577, 1535, DType.S8, DType.S4);
            KernelChecks.gemmS32(ctx, 9, 31, 64, 4097, DType.S4, DType.S4);
        }
    }
    /** The plans of CudaKernelTest's windowed-gather checks, on every CPU level (the same reference). */
    @ParameterizedTest
    @MethodSource("isas")
    void flattenPlansOfEveryShapeMatchReference(CpuIsa isa) {
        try (Context ctx = open(isa)) {
            long seed = 1700;
            for (int[] s : new int[][] {{1, 64}, {7, 61}}) {
                for (String kind : KernelChecks.PLAN_KINDS) {
                    for (int bits : new int[] {8, 4}) {
                        KernelChecks.flattenQuantizePlan(ctx, seed++, s[0], s[1], kind, 0, bits, DType.F16);
                        KernelChecks.flattenQuantizePlan(ctx, seed++, s[0], s[1], kind, 0, bits, DType.F32);
                    }
                }
            }
            for (int outCols : new int[] {5, 61, 77}) {
                KernelChecks.flattenQuantizePlan(ctx, seed++, 7, 64, "offsets", outCols, 4, DType.BF16);
            }
        }
    }

    @ParameterizedTest
    @MethodSource("isas")
    void flattenQuantizeMatchesReference(CpuIsa isa) {
        try (Context ctx = open(isa)) {
            long seed = 300;
            for (int[] s : new int[][] {{1, 1}, {3, 7}, {17, 33}, {40, 577}}) {
                for (int bits : new int[] {8, 4}) {
                    for (Granularity g : Granularity.values()) {
                        KernelChecks.flattenQuantize(ctx, seed++, s[0], s[1], bits, g, DType.F32);
                    }
                    KernelChecks.flattenQuantize(ctx, seed++, s[0], s[1], bits, Granularity.PER_TENSOR, DType.F16);
                    KernelChecks.flattenQuantize(ctx, seed++, s[0], s[1], bits, Granularity.PER_ROW, DType.BF16);
                }
            }
        }
    }
}
