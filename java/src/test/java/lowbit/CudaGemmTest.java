package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The tuned SM90 W8A8 GEMM kernels (CUTLASS on INT8 wgmma): every compiled configuration against
 * the CPU backend on the same INT8 operands and scales. The fused epilogue runs in float32 steps
 * without FMA contraction, so F16 and BF16 outputs must equal the CPU backend's bit for bit; they
 * must also lie within the output format's rounding of the FP64 value of the epilogue, and with unit
 * scales equal the rounded exact integer product. Outputs are poisoned first. Shapes off the
 * alignment rules run the portable kernel under the dispatch and are refused, with the reason,
 * when a tuned configuration is forced. Skipped without a CUDA device; the tuned-kernel tests are
 * skipped (visibly) on a GPU that is not sm_90.
 */
class CudaGemmTest extends GpuTestBase {
    /** Operands and scales of one problem, uploaded to one context. */
    private static final class Problem implements AutoCloseable {
        final List<AutoCloseable> owned = new ArrayList<>();
        final QuantizedTensor a;
        final QuantizedTensor b;
        final Tensor bias;

        Problem(Context ctx, byte[] a8, byte[] b8, float[] as, float[] bs, float[] bias, int m, int n, int k) {
            Tensor av = track(ctx.upload(a8, DType.S8, m, k));
            Tensor bv = track(ctx.upload(b8, DType.S8, n, k));
            Tensor asT = track(ctx.upload(as, 1, as.length));
            Tensor bsT = track(ctx.upload(bs, 1, bs.length));
            this.a = new QuantizedTensor(av, asT, as.length == 1 ? Granularity.PER_TENSOR : Granularity.PER_ROW, 0);
            this.b = new QuantizedTensor(bv, bsT, bs.length == 1 ? Granularity.PER_TENSOR : Granularity.PER_ROW, 0);
            this.bias = bias == null ? null : track(ctx.upload(bias, 1, n));
        }

        private Tensor track(Tensor t) {
            owned.add(t);
            return t;
        }

        @Override
        public void close() throws Exception {
            for (AutoCloseable c : owned) {
                c.close();
            }
        }
    }

    private static byte[] randomS8(Random rnd, int count, int max) {
        byte[] v = new byte[count];
        for (int i = 0; i < count; i++) {
            v[i] = (byte) (rnd.nextInt(2 * max + 1) - max);
        }
        return v;
    }

    private static float[] randomScales(Random rnd, int count, double magnitude) {
        float[] s = new float[count];
        for (int i = 0; i < count; i++) {
            s[i] = (float) (magnitude * (0.25 + rnd.nextDouble()));
        }
        return s;
    }

    private static void requireSm90Kernels() {
        Assumptions.assumeFalse(Lowbit.gemmConfigs().isEmpty(), "this liblowbit has no sm_90a kernels");
        // M = 64: above the weight-streaming decode kernel's M <= 16, where the tuned kernels are dispatched
        try (Tensor a = gpu.allocate(DType.S8, 64, 16);
                Tensor b = gpu.allocate(DType.S8, 8, 16);
                Tensor s = gpu.allocate(DType.F32, 1, 1)) {
            QuantizedTensor qa = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
            QuantizedTensor qb = new QuantizedTensor(b, s, Granularity.PER_TENSOR, 0);
            Assumptions.assumeFalse(gpu.gemmConfigFor(qa, qb, DType.F16).equals(Context.PORTABLE),
                    "the CUDA device is not sm_90: the tuned kernels cannot run on it");
        }
    }

    /**
     * Runs {@code config} on the GPU and the CPU backend on identical operands and scales; asserts
     * bit equality, then the FP64 bound on three rows.
     */
    private static void check(String config, long seed, int m, int n, int k, boolean perToken, boolean perChannel,
            boolean withBias, DType out) throws Exception {
        Random rnd = new Random(seed);
        byte[] a8 = randomS8(rnd, m * k, 127);
        byte[] b8 = randomS8(rnd, n * k, 127);
        // acc * as * bs stays around 1..100, well inside F16's range.
        double accScale = 127.0 * 127.0 * Math.sqrt(k) / 3;
        float[] as = randomScales(rnd, perToken ? m : 1, 1.0 / accScale);
        float[] bs = randomScales(rnd, perChannel ? n : 1, 30.0);
        float[] bias = null;
        if (withBias) {
            bias = new float[n];
            for (int j = 0; j < n; j++) {
                bias[j] = (float) rnd.nextGaussian();
            }
        }
        String what = config + " " + m + "x" + n + "x" + k + (perToken ? " per-token" : " per-tensor")
                + (perChannel ? "/per-channel" : "/per-tensor") + (withBias ? " +bias" : "") + " -> " + out;
        try (Problem g = new Problem(gpu, a8, b8, as, bs, bias, m, n, k);
                Problem c = new Problem(cpu, a8, b8, as, bs, bias, m, n, k);
                Tensor yg = gpu.allocate(out, m, n);
                Tensor yc = cpu.allocate(out, m, n)) {
            KernelChecks.poison(yg);
            gpu.gemmInto(g.a, g.b, g.bias, yg, config);
            cpu.gemmInto(c.a, c.b, c.bias, yc);
            short[] got = yg.toShortArray();
            short[] want = yc.toShortArray();
            for (int i = 0; i < got.length; i++) {
                if (got[i] != want[i]) {
                    fail(what + ": out[" + i / n + "][" + i % n + "] = 0x" + Integer.toHexString(got[i] & 0xffff)
                            + ", CPU backend 0x" + Integer.toHexString(want[i] & 0xffff));
                }
            }
            // Bound against FP64 on sampled rows: the output format's half-ulp plus float32 steps.
            double rel = out == DType.F16 ? Math.scalb(1.0, -11) : Math.scalb(1.0, -8);
            for (int i : new int[] {0, m / 2, m - 1}) {
                for (int j = 0; j < n; j++) {
                    long acc = 0;
                    for (int t = 0; t < k; t++) {
                        acc += a8[i * k + t] * b8[j * k + t];
                    }
                    double exact = acc * (double) as[perToken ? i : 0] * bs[perChannel ? j : 0]
                            + (withBias ? bias[j] : 0);
                    double v = out == DType.F16 ? Half.toFloat(got[i * n + j]) : Half.bf16ToFloat(got[i * n + j]);
                    double bound = (rel + 1e-6) * Math.abs(exact) + 1e-6;
                    if (!(Math.abs(v - exact) <= bound)) {
                        fail(what + ": out[" + i + "][" + j + "] = " + v + ", FP64 " + exact + " (bound " + bound + ")");
                    }
                }
            }
        }
    }

    @Test
    void everyConfigMatchesTheCpuBackendBitForBit() throws Exception {
        requireSm90Kernels();
        List<String> configs = new ArrayList<>(Lowbit.gemmConfigs());
        configs.add(Context.AUTO);
        long seed = 1000;
        int[][] shapes = {{1, 256, 4096}, {7, 1032, 512}, {64, 4096, 1024}, {300, 1024, 2048}, {4095, 512, 256}};
        for (String config : configs) {
            for (int s = 0; s < shapes.length; s++) {
                int[] sh = shapes[s];
                DType out = s % 2 == 0 ? DType.F16 : DType.BF16;
                check(config, seed++, sh[0], sh[1], sh[2], s % 2 == 0, true, s % 3 != 1, out);
            }
            check(config, seed++, 33, 264, 272, false, false, false, DType.BF16);
            check(config, seed++, 128, 128, 16, true, false, true, DType.F16);
        }
    }

    /** Unit scales: the output is the exact integer product rounded once to F16. */
    @Test
    void integerPartIsExact() throws Exception {
        requireSm90Kernels();
        long seed = 2000;
        for (String config : Lowbit.gemmConfigs()) {
            int m = 129;
            int n = 264;
            int k = 1024;
            Random rnd = new Random(seed++);
            byte[] a8 = randomS8(rnd, m * k, 127);
            byte[] b8 = randomS8(rnd, n * k, 3);  // sums stay far below F16's 65504
            a8[0] = -127;
            try (Problem g = new Problem(gpu, a8, b8, new float[] {1f}, new float[] {1f}, null, m, n, k);
                    Tensor y = gpu.allocate(DType.F16, m, n)) {
                KernelChecks.poison(y);
                gpu.gemmInto(g.a, g.b, null, y, config);
                short[] got = y.toShortArray();
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        long acc = 0;
                        for (int t = 0; t < k; t++) {
                            acc += a8[i * k + t] * b8[j * k + t];
                        }
                        short want = Half.fromFloat((float) acc);
                        if (got[i * n + j] != want) {
                            fail(config + ": C[" + i + "][" + j + "] = " + Half.toFloat(got[i * n + j]) + ", exact "
                                    + acc + " rounds to " + Half.toFloat(want));
                        }
                    }
                }
            }
        }
    }

    @Test
    void misalignedShapesRunThePortableKernelAndForcedConfigsAreRefused() throws Exception {
        requireSm90Kernels();
        int[][] shapes = {{7, 264, 4100}, {16, 1001, 512}, {1, 260, 4104}};
        long seed = 3000;
        for (int[] sh : shapes) {
            int m = sh[0];
            int n = sh[1];
            int k = sh[2];
            Random rnd = new Random(seed++);
            byte[] a8 = randomS8(rnd, m * k, 127);
            byte[] b8 = randomS8(rnd, n * k, 127);
            float[] as = randomScales(rnd, m, 1e-4);
            float[] bs = randomScales(rnd, n, 1.0);
            try (Problem g = new Problem(gpu, a8, b8, as, bs, null, m, n, k);
                    Tensor y = gpu.allocate(DType.F16, m, n)) {
                assertEquals(Context.PORTABLE, gpu.gemmConfigFor(g.a, g.b, DType.F16), m + "x" + n + "x" + k);
                for (String config : Lowbit.gemmConfigs()) {
                    LowbitException e = assertThrows(LowbitException.class,
                            () -> gpu.gemmInto(g.a, g.b, null, y, config));
                    assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
                    assertTrue(e.getMessage().contains("not a multiple of"), e.getMessage());
                }
            }
            check(Context.AUTO, seed++, m, n, k, true, true, true, DType.F16);
        }
        // Tuned kernels write only F16/BF16: F32 runs the portable kernel, and forcing is refused.
        try (Tensor a = gpu.allocate(DType.S8, 64, 256);
                Tensor s = gpu.allocate(DType.F32, 1, 1);
                Tensor y = gpu.allocate(DType.F32, 64, 64)) {
            QuantizedTensor q = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
            try (Tensor b = gpu.allocate(DType.S8, 64, 256);
                    Tensor bs = gpu.allocate(DType.F32, 1, 1)) {
                QuantizedTensor qb = new QuantizedTensor(b, bs, Granularity.PER_TENSOR, 0);
                assertEquals(Context.PORTABLE, gpu.gemmConfigFor(q, qb, DType.F32));
                LowbitException e = assertThrows(LowbitException.class,
                        () -> gpu.gemmInto(q, qb, null, y, Lowbit.gemmConfigs().get(0)));
                assertTrue(e.getMessage().contains("F16 or BF16"), e.getMessage());
            }
        }
        // The context keeps working after the refusals.
        check(Context.AUTO, seed, 64, 256, 256, true, true, false, DType.F16);
    }

    /** A loaded table decides the configuration; shapes absent from it get the heuristic. */
    @Test
    void theDispatchTableChoosesTheConfiguration() throws Exception {
        requireSm90Kernels();
        List<String> configs = Lowbit.gemmConfigs();
        try (Context ctx = Context.open(Backend.CUDA);
                Tensor a = ctx.allocate(DType.S8, 300, 512);
                Tensor b = ctx.allocate(DType.S8, 1024, 512);
                Tensor s = ctx.allocate(DType.F32, 1, 1)) {
            QuantizedTensor qa = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
            QuantizedTensor qb = new QuantizedTensor(b, s, Granularity.PER_TENSOR, 0);
            String before = ctx.gemmConfigFor(qa, qb, DType.F16);
            assertTrue(configs.contains(before), before);
            for (String config : configs) {
                ctx.loadGemmTuning("lowbit-gemm-tuning 1\narch sm90\ndevice test\n# m_max k n config\n"
                        + "16 512 1024 " + configs.get(0) + "\n512 512 1024 " + config + " 12.5 us\n");
                assertEquals(config, ctx.gemmConfigFor(qa, qb, DType.F16));
                assertEquals(config, ctx.gemmConfigFor(qa, qb, DType.BF16));
            }
            ctx.loadGemmTuning("lowbit-gemm-tuning 1\n1024 512 1024 no_such_config\n");
            assertEquals(before, ctx.gemmConfigFor(qa, qb, DType.F16), "unknown names fall back to the heuristic");
            LowbitException e = assertThrows(LowbitException.class,
                    () -> ctx.loadGemmTuning("lowbit-gemm-tuning 1\n16 512 x pp\n"));
            assertEquals(LowbitException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage().contains("line 2"), e.getMessage());
        }
    }

    /** The cuBLAS FP16 baseline is the same product (within FP16 rounding of FP32 sums). */
    @Test
    void cublasBaselineComputesTheProduct() {
        int m = 33;
        int n = 256;
        int k = 512;
        Random rnd = new Random(5);
        short[] a = new short[m * k];
        short[] b = new short[n * k];
        float[] af = new float[m * k];
        float[] bf = new float[n * k];
        for (int i = 0; i < a.length; i++) {
            a[i] = Half.fromFloat((float) rnd.nextGaussian());
            af[i] = Half.toFloat(a[i]);
        }
        for (int i = 0; i < b.length; i++) {
            b[i] = Half.fromFloat((float) rnd.nextGaussian());
            bf[i] = Half.toFloat(b[i]);
        }
        try (Tensor ta = gpu.upload(a, DType.F16, m, k);
                Tensor tb = gpu.upload(b, DType.F16, n, k);
                Tensor out = gpu.allocate(DType.F16, m, n)) {
            KernelChecks.poison(out);
            try {
                gpu.baselineGemmF16(ta, tb, out);
            } catch (LowbitException e) {
                assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
                Assumptions.abort("cuBLAS is not installed on this host: " + e.getMessage());
            }
            short[] got = out.toShortArray();
            double[] exact = Reference.matmul(af, bf, m, n, k);
            for (int i = 0; i < got.length; i++) {
                double v = Half.toFloat(got[i]);
                assertTrue(Math.abs(v - exact[i]) <= 1e-3 * Math.abs(exact[i]) + 0.02,
                        "out[" + i / n + "][" + i % n + "] = " + v + ", FP64 " + exact[i]);
            }
        }
    }
}
