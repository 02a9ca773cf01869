package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The dense float GEMM through cuBLAS against the FP64 bound (and so against the CPU reference, which
 * meets a tighter one): F32 (the calibration engine's products, no TF32), F16 and BF16 (the
 * benchmarks' baselines), both layouts of b, accumulate, odd shapes.
 */
class CudaDenseGemmTest extends GpuTestBase {
    @BeforeAll
    static void needsCublas() {
        try (Tensor a = gpu.allocate(DType.F32, 1, 1); Tensor out = gpu.allocate(DType.F32, 1, 1)) {
            gpu.denseGemm(a, a, true, out, false);
        } catch (LowbitException e) {
            assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
            Assumptions.abort("cuBLAS is not installed on this host: " + e.getMessage());
        }
    }

    @Test
    void matchesFp64OnOddShapes() {
        int[][] shapes = {{1, 1, 1}, {1, 4097, 576}, {7, 33, 129}, {300, 257, 1000}, {4095, 64, 96}};
        long seed = 100;
        for (DType t : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            for (int[] s : shapes) {
                for (boolean bT : new boolean[] {true, false}) {
                    DenseGemmChecks.check(gpu, seed++, t, s[0], s[1], s[2], bT, false);
                }
                DenseGemmChecks.check(gpu, seed++, t, s[0], s[1], s[2], false, true);
            }
        }
    }

    @Test
    void engineSizedF32Product() {
        // the calibration engine's forward shape: 4096 tokens x 576 -> 1536
        DenseGemmChecks.check(gpu, 7, DType.F32, 512, 1536, 576, false, false);
    }
}
