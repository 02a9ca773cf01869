package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The dense float GEMM on the CPU backend (the reference the cuBLAS path is tested against). */
class DenseGemmTest {
    @Test
    void matchesFp64OnOddShapesEveryTypeLayoutAndMode() {
        try (Context cpu = Context.open(Backend.CPU)) {
            int[][] shapes = {{1, 1, 1}, {1, 7, 129}, {7, 5, 3}, {33, 17, 65}, {9, 64, 200}};
            long seed = 1;
            for (DType t : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                for (int[] s : shapes) {
                    for (boolean bT : new boolean[] {true, false}) {
                        for (boolean acc : new boolean[] {false, true}) {
                            DenseGemmChecks.check(cpu, seed++, t, s[0], s[1], s[2], bT, acc);
                        }
                    }
                }
            }
        }
    }

    @Test
    void f32ResultIsTheFp64SumRoundedOnce() {
        // The CPU path sums in FP64 and rounds once: on small integers every partial sum is exact, so
        // the result must be exactly the integer product (a check that does not depend on the bound).
        try (Context cpu = Context.open(Backend.CPU);
                Tensor a = cpu.upload(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
                Tensor b = cpu.upload(new float[] {7, 8, 9, 10, 11, 12}, 3, 2);
                Tensor out = cpu.upload(new float[] {100, 200, 300, 400}, 2, 2)) {
            cpu.denseGemm(a, b, false, out, true);
            float[] got = out.toFloatArray();
            assertEquals(100 + 58, got[0]);
            assertEquals(200 + 64, got[1]);
            assertEquals(300 + 139, got[2]);
            assertEquals(400 + 154, got[3]);
        }
    }

    @Test
    void badOperandsAreClearErrors() {
        try (Context cpu = Context.open(Backend.CPU);
                Tensor a = cpu.allocate(DType.F32, 4, 8);
                Tensor b = cpu.allocate(DType.F32, 6, 8);
                Tensor wrongK = cpu.allocate(DType.F32, 6, 7);
                Tensor h = cpu.allocate(DType.F16, 6, 8);
                Tensor s8 = cpu.allocate(DType.S8, 4, 8);
                Tensor out = cpu.allocate(DType.F32, 4, 6);
                Tensor badOut = cpu.allocate(DType.F32, 4, 5)) {
            cpu.denseGemm(a, b, true, out, false);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cpu.denseGemm(a, wrongK, true, out, false));
            assertTrue(e.getMessage().contains("K mismatch"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> cpu.denseGemm(a, h, true, out, false));
            assertTrue(e.getMessage().contains("one type"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> cpu.denseGemm(s8, b, true, out, false));
            assertTrue(e.getMessage().contains("F32, F16 or BF16"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cpu.denseGemm(a, b, true, badOut, false));
            // b is 6 x 8: as K x N that needs K = 6, a has K = 8
            e = assertThrows(IllegalArgumentException.class, () -> cpu.denseGemm(a, b, false, out, false));
            assertTrue(e.getMessage().contains("K mismatch"), e.getMessage());
        }
    }
}
