package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import lowbit.CudaExpandGemmTest.Dgq;
import lowbit.CudaExpandGemmTest.Owned;
import lowbit.CudaExpandGemmTest.W4a8;
import lowbit.CudaW4a4GemmTest.W4a4;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The fused 4-bit-weight GEMM of sm_90 ({@link Context#SM90_W4}: native/src/cuda/sm90/w4_kernel.cuh,
 * CUTLASS's mixed-input mainloop: the codes reach shared memory as codes and are expanded to INT8 in
 * registers before the INT8 wgmma) against the CPU backend, bit for bit: W4A8, W4A4 (activations
 * expanded first) and DGQ A8W4 signed and with zero points (group terms applied in the mainloop),
 * G = 128 and G = K (DGQ up to M = 512, where it runs this kernel), every tile configuration the
 * dispatch picks (it goes by the tile count: M from 17 to 2053 and N from 264 to 16392 reach the
 * 64-channel, the 128 x 128 and the clustered 128 x 256 tiles), F16 and BF16 outputs,
 * per-token and per-tensor scales, bias; odd M; N not a multiple of the 128-channel tile. Outputs
 * are poisoned first, so an element never written shows. Also: Auto chooses it on its rules above
 * M = 16, and forcing it off them is refused with the reason. Without an sm_90 GPU and the sm_90a
 * kernels the class skips, saying so.
 */
class CudaFusedW4GemmTest extends GpuTestBase {
    static final int[] MS = {17, 300, 1031, 2053};
    static final DType[] OUTS = {DType.F16, DType.BF16};

    static void requireFusedKernel() {
        CudaExpandGemmTest.requireTunedKernels();
        Assumptions.assumeTrue(Context.SM90_W4.equals(new W4a8(1, 64, 264, 1024, true, false).dispatched(gpu, DType.F16)),
                "the fused 4-bit kernel is not dispatched on this GPU");
    }

    @Test
    void w4a8MatchesTheCpuBackend() throws Exception {
        requireFusedKernel();
        // N x K: N a multiple of the 128-channel tile, and not (264, 520: the last tile is partial);
        // 16392 channels: the 128 x 128 tile at M = 17, the clustered 128 x 256 one from M = 300.
        int[][] shapes = {{264, 1024}, {1024, 4096}, {520, 1056}, {16392, 256}};
        long seed = 1100;
        for (int m : MS) {
            for (int[] s : shapes) {
                W4a8 p = new W4a8(seed, m, s[0], s[1], seed % 2 == 0, seed % 3 != 0);
                seed++;
                assertEquals(Context.SM90_W4, p.dispatched(gpu, DType.F16), p.name());
                assertEquals(Context.SM90_W4, p.dispatched(gpu, DType.BF16), p.name());
                CudaExpandGemmTest.checkW4a8(gpu, p, OUTS, null);
                CudaExpandGemmTest.checkW4a8(gpu, p, new DType[] {DType.F16}, Context.SM90_W4);
            }
        }
    }

    @Test
    void w4a4MatchesTheCpuBackend() throws Exception {
        requireFusedKernel();
        long seed = 1200;
        for (int m : MS) {
            for (int[] s : new int[][] {{264, 1024}, {1024, 2048}}) {
                W4a4 p = new W4a4(seed, m, s[0], s[1], seed % 2 == 0, seed % 3 != 0);
                seed++;
                assertEquals(Context.SM90_W4, p.dispatched(gpu, DType.F16), p.name());
                CudaW4a4GemmTest.check(gpu, p, OUTS, null);
            }
        }
    }

    /** DGQ on the fused kernel's rules (G a multiple of 128 or K): signed and zero points. */
    @Test
    void dgqMatchesTheCpuBackend() throws Exception {
        requireFusedKernel();
        // 16392 channels: the 128 x 128 tile at M = 17, the clustered 128 x 256 one from M = 131.
        int[][] cases = {{264, 1024, 128}, {1008, 4096, 128}, {512, 2048, 256}, {144, 1024, 1024}, {16392, 256, 128}};
        long seed = 1300;
        for (int m : new int[] {17, 131, 512}) {  // DGQ runs the fused kernel up to M = 512 (lowbit.h)
            for (int[] c : cases) {
                for (boolean zeroPoints : new boolean[] {false, true}) {
                    CudaExpandGemmTest.checkDgq(gpu, new Dgq(seed, m, c[0], c[1], c[2], zeroPoints, seed % 3 != 1,
                            seed % 4 != 0), OUTS);
                    seed++;
                }
            }
        }
    }

    @Test
    void offItsRulesItIsRefusedWithTheReason() throws Exception {
        requireFusedKernel();
        try (Owned o = new Owned()) {
            W4a8 k1040 = new W4a8(1400, 64, 264, 1040, true, false);
            assertNotEquals(Context.SM90_W4, k1040.dispatched(gpu, DType.F16), "K % 32 != 0 takes the expansion path");
            LowbitException e = assertThrows(LowbitException.class,
                    () -> k1040.run(gpu, o, DType.F16, Context.SM90_W4));
            assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("K=1040 is not a multiple of 32"), e.getMessage());

            W4a8 f32 = new W4a8(1401, 64, 264, 1024, true, false);
            e = assertThrows(LowbitException.class, () -> f32.run(gpu, o, DType.F32, Context.SM90_W4));
            assertTrue(e.getMessage().contains("F16 or BF16"), e.getMessage());

            W4a8 n1001 = new W4a8(1402, 64, 1001, 1024, true, false);
            e = assertThrows(LowbitException.class, () -> n1001.run(gpu, o, DType.F16, Context.SM90_W4));
            assertTrue(e.getMessage().contains("N=1001 is not a multiple of 8"), e.getMessage());

            try (Tensor a = gpu.allocate(DType.S8, 64, 1024);
                    Tensor b = gpu.allocate(DType.S8, 264, 1024);
                    Tensor s = gpu.allocate(DType.F32, 1, 1);
                    Tensor y = gpu.allocate(DType.F16, 64, 264)) {
                QuantizedTensor qa = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
                QuantizedTensor qb = new QuantizedTensor(b, s, Granularity.PER_TENSOR, 0);
                e = assertThrows(LowbitException.class, () -> gpu.gemmInto(qa, qb, null, y, Context.SM90_W4));
                assertTrue(e.getMessage().contains("S4 weights"), e.getMessage());
            }
            W4a8 onCpu = new W4a8(1403, 64, 264, 1024, true, false);
            e = assertThrows(LowbitException.class, () -> onCpu.run(cpu, o, DType.F16, Context.SM90_W4));
            assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("LOWBIT_GEMM_SM90_W4"), e.getMessage());
        }
    }
}
