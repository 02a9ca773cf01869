package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import org.junit.jupiter.api.Test;

/**
 * The tuned-GEMM API on any host: the configuration list, table syntax errors, and what a CPU
 * context answers (it has only its portable kernel, and refuses the CUDA INT4 tensor-core kernel).
 */
class GemmTuningTest {
    @Test
    void configNamesAreWellFormed() {
        for (String name : Lowbit.gemmConfigs()) {
            assertTrue(name.matches("(pp|coop|sk)_\\d+x\\d+x\\d+_c\\d+x\\d+"), name);
        }
        assertEquals(Lowbit.gemmConfigs().size(), Lowbit.gemmConfigs().stream().distinct().count());
    }

    @Test
    void malformedTablesNameTheLine() {
        try (Context cpu = Context.open(Backend.CPU)) {
            String[][] cases = {
                {"", "header"},
                {"lowbit-gemm-tuning 2\n", "version 2"},
                {"# comment\nlowbit-gemm-tuning 1\n16 4096 4096\n", "line 3"},
                {"lowbit-gemm-tuning 1\n16 4096 -4096 pp_64x128x256_c1x1\n", "line 2"},
                {"lowbit-gemm-tuning 1\n16 4096 4096 a\n16 4096 4096 b\n", "duplicate"},
            };
            for (String[] c : cases) {
                LowbitException e = assertThrows(LowbitException.class, () -> cpu.loadGemmTuning(c[0]), c[0]);
                assertEquals(LowbitException.Status.INVALID_ARGUMENT, e.status(), e.getMessage());
                assertTrue(e.getMessage().contains(c[1]), e.getMessage());
            }
            LowbitException e = assertThrows(LowbitException.class,
                    () -> cpu.loadGemmTuning("lowbit-gemm-tuning 1\narch sm90\n16 4096 4096 pp_64x128x256_c1x1\n"));
            assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
        }
    }

    @Test
    void aCpuContextRunsOnlyItsPortableKernel() {
        try (Context cpu = Context.open(Backend.CPU);
                Tensor a = cpu.upload(new byte[64 * 32], DType.S8, 64, 32);
                Tensor s = cpu.upload(new float[] {0.5f}, 1, 1);
                Tensor y = cpu.allocate(DType.F16, 64, 64)) {
            QuantizedTensor q = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
            assertEquals(Context.PORTABLE, cpu.gemmConfigFor(q, q, DType.F16));
            cpu.gemmInto(q, q, null, y, Context.PORTABLE);
            cpu.gemmInto(q, q, null, y, Context.AUTO);
            for (short v : y.toShortArray()) {
                assertEquals(0, v);
            }
            for (String config : Lowbit.gemmConfigs()) {
                LowbitException e = assertThrows(LowbitException.class, () -> cpu.gemmInto(q, q, null, y, config));
                assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
            }
            assertThrows(IllegalArgumentException.class, () -> cpu.gemmInto(q, q, null, y, "no_such_config"));
        }
    }

    /**
     * The INT4 tensor-core kernel (LOWBIT_GEMM_SM80_S4) and the fused 4-bit-weight kernel
     * (LOWBIT_GEMM_SM90_W4) are CUDA kernels: a CPU context refuses them by name, W4A4 included, and
     * has no kernel binary to report; a config below -4 is invalid.
     */
    @Test
    void aCpuContextRefusesTheInt4TensorCoreKernel() {
        try (Context cpu = Context.open(Backend.CPU);
                Tensor a = cpu.upload(new byte[64 * 16], DType.S4, 64, 32);
                Tensor s = cpu.upload(new float[] {0.5f}, 1, 1);
                Tensor y = cpu.allocate(DType.F16, 64, 64)) {
            QuantizedTensor q = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
            assertEquals(Context.PORTABLE, cpu.gemmConfigFor(q, q, DType.F16));
            LowbitException e = assertThrows(LowbitException.class, () -> cpu.gemmInto(q, q, null, y, Context.SM80_S4));
            assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("LOWBIT_GEMM_SM80_S4"), e.getMessage());
            LowbitException b = assertThrows(LowbitException.class, () -> cpu.gemmKernelBinary(Context.SM80_S4));
            assertEquals(LowbitException.Status.UNSUPPORTED, b.status(), b.getMessage());
        }
        try (RawContext r = new RawContext(LowbitNative.LOWBIT_BACKEND_CPU)) {
            lowbit_buffer a = r.bytes(new byte[64 * 16]);
            lowbit_buffer s = r.floats(new float[] {0.5f});
            lowbit_buffer y = r.bytes(new byte[64 * 64 * 2]);
            int status = LowbitNative.lowbit_gemm_dequant_config(r.ctx, LowbitNative.LOWBIT_GEMM_SM90_W4, DType.S4.code,
                    a, 32, DType.S4.code, a, 32, 64, 64, 32, s, 1, s, 1, null, DType.F16.code, y, 64);
            assertEquals(LowbitNative.LOWBIT_ERR_UNSUPPORTED, status, RawContext.error());
            assertTrue(RawContext.error().contains("LOWBIT_GEMM_SM90_W4 (-4)"), RawContext.error());
            status = LowbitNative.lowbit_gemm_dequant_config(r.ctx, -5, DType.S4.code, a, 32,
                    DType.S4.code, a, 32, 64, 64, 32, s, 1, s, 1, null, DType.F16.code, y, 64);
            assertEquals(LowbitNative.LOWBIT_ERR_INVALID_ARGUMENT, status, RawContext.error());
            assertTrue(RawContext.error().contains("LOWBIT_GEMM_SM90_W4 (-4)"), RawContext.error());
        }
    }
}
