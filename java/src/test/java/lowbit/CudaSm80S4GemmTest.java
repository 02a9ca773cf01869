package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.Random;
import lowbit.CudaExpandGemmTest.Owned;
import lowbit.CudaW4a4GemmTest.W4a4;
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The native INT4 tensor-core GEMM ({@link Context#SM80_S4}: CUTLASS 2.x on {@code
 * mma.sync.m16n8k64.s4}, native/src/cuda/sm80/s4_tensorop.cu) forced on W4A4 requests, against the
 * CPU backend bit for bit and against the exact integer product. The library carries the kernel as
 * sm_80 / sm_89 SASS plus compute_80 PTX only, so on an H100 it runs through the driver's PTX JIT:
 * {@link #theLoadedBinaryIsReported} says which code ran, and prints it. Covered: M = 1, 7, 300,
 * 1027 (partial 128-row tiles); N and K on the kernel's rules (K % 32, N % 4) but not on its tiles
 * (N = 4, 264, 1000; K = 32, 1056 = 33 x 32, 4096); every nibble including -8; per-token and
 * per-tensor activation scales, bias, F32/F16/BF16 outputs; raw strides (lda, ldb multiples of 32
 * above K, an output stride with padding that must stay untouched); an accumulator split in row
 * chunks (M = 4097 at N = 8192: 2048 + 2048 + 1 rows); shapes and strides off the rules and S8
 * activations refused with UNSUPPORTED naming the rule, nothing written, while AUTO still runs them
 * (portable kernel); AUTO picks the kernel on compute capability 8.x only. Outputs are poisoned
 * first, so an element never written shows.
 */
class CudaSm80S4GemmTest extends GpuTestBase {
    static final int[] MS = {1, 7, 300, 1027};
    /** N x K on the kernel's rules. */
    static final int[][] ON_RULES = {{264, 1024}, {1000, 4096}, {4, 32}, {520, 1056}};
    static final DType[] OUTS = {DType.F32, DType.F16, DType.BF16};

    /** The loaded code of the kernel; skips the test when this build has no INT4 tensor-core kernel. */
    private static KernelBinary requireKernel() {
        try {
            return gpu.gemmKernelBinary(Context.SM80_S4);
        } catch (LowbitException e) {
            Assumptions.assumeTrue(e.status() != LowbitException.Status.UNSUPPORTED,
                    "this liblowbit has no sm_80 INT4 tensor-core kernel (" + e.getMessage() + ")");
            throw e;
        }
    }

    /** The forced kernel on ctx against the CPU backend, for every output type in outs. */
    static void check(Context ctx, W4a4 p, DType[] outs) throws Exception {
        for (DType out : outs) {
            try (Owned o = new Owned()) {
                CudaExpandGemmTest.assertSameBits(p.name() + " -> " + out + " (sm80_s4)",
                        p.run(ctx, o, out, Context.SM80_S4), p.run(cpu, o, out, null), p.n);
            }
        }
    }

    // ---- the kernel against the CPU backend and the exact product ----------------------------

    @Test
    void forcedKernelMatchesTheCpuBackend() throws Exception {
        requireKernel();
        long seed = 1;
        for (int m : MS) {
            for (int[] s : ON_RULES) {
                check(gpu, new W4a4(seed, m, s[0], s[1], seed % 2 == 0, seed % 3 != 0), OUTS);
                seed++;
            }
        }
    }

    /**
     * Unit scales, F32 output: every element must be the exact integer sum (|sum| &lt; 2^24 here,
     * so float holds it exactly), computed in Java from the packed nibbles. Extreme codes (-8 and 7
     * only) at K = 4096 reach |sum| = 262144.
     */
    @Test
    void forcedKernelGivesTheExactIntegerProduct() throws Exception {
        requireKernel();
        for (boolean extreme : new boolean[] {false, true}) {
            int m = 300;
            int n = 264;
            int k = 4096;
            Random rnd = new Random(extreme ? 11 : 10);
            byte[] a = new byte[m * k / 2];
            byte[] w = new byte[n * k / 2];
            if (extreme) {
                byte[] pairs = {(byte) 0x88, (byte) 0x77, (byte) 0x78, (byte) 0x87};
                for (int i = 0; i < a.length; i++) a[i] = i % 3 == 0 ? pairs[rnd.nextInt(4)] : (byte) 0x88;
                for (int i = 0; i < w.length; i++) w[i] = i % 5 == 0 ? pairs[rnd.nextInt(4)] : (byte) 0x88;
            } else {
                rnd.nextBytes(a);
                rnd.nextBytes(w);
            }
            int[] qa = Reference.unpackS4(a, m, k);
            int[] qw = Reference.unpackS4(w, n, k);
            float[] want = new float[m * n];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    long sum = 0;
                    for (int c = 0; c < k; c++) sum += (long) qa[i * k + c] * qw[j * k + c];
                    want[i * n + j] = sum;
                }
            }
            try (Owned o = new Owned()) {
                Tensor one = o.add(gpu.upload(new float[] {1f}, 1, 1));
                QuantizedTensor ta = new QuantizedTensor(o.add(gpu.upload(a, DType.S4, m, k)), one,
                        Granularity.PER_TENSOR, 0);
                QuantizedTensor tw = new QuantizedTensor(o.add(gpu.upload(w, DType.S4, n, k)), one,
                        Granularity.PER_TENSOR, 0);
                Tensor y = o.add(gpu.allocate(DType.F32, m, n));
                KernelChecks.poison(y);
                gpu.gemmInto(ta, tw, null, y, Context.SM80_S4);
                assertArrayEquals(want, y.toFloatArray(), (extreme ? "extreme codes " : "random codes ") + m + "x" + n
                        + "x" + k + ": the exact integer product");
            }
        }
    }

    /**
     * M x N x 4 bytes above the 64 MiB accumulator chunk: M = 4097 at N = 8192 runs in row chunks of
     * 2048, 2048 and 1 (the last one's per-token scale is a single entry); per-token scales and bias
     * must follow the rows.
     */
    @Test
    void rowChunksOfTheAccumulatorMatchTheCpuBackend() throws Exception {
        requireKernel();
        check(gpu, new W4a4(40, 4097, 8192, 64, true, true), new DType[] {DType.F16});
        check(gpu, new W4a4(41, 2049, 8192, 96, false, false), new DType[] {DType.BF16});
    }

    // ---- strides and refusals through the raw C ABI ----------------------------------------------

    private static int code(DType t) {
        return t == DType.F32 ? LowbitNative.LOWBIT_F32 : t == DType.F16 ? LowbitNative.LOWBIT_F16 : LowbitNative.LOWBIT_BF16;
    }

    private static int bytesOf(DType t) {
        return t == DType.F32 ? 4 : 2;
    }

    /** Packs the K-column rows of dense packed S4 at a row stride of ld nibbles (padding random). */
    private static byte[] restride(byte[] packed, int rows, int k, int ld, Random rnd) {
        byte[] out = new byte[rows * ld / 2];
        rnd.nextBytes(out);  // padding nibbles must not matter
        for (int r = 0; r < rows; r++) {
            System.arraycopy(packed, r * k / 2, out, r * ld / 2, k / 2);
        }
        return out;
    }

    /**
     * lda = K + 32, ldb = K + 64 (on the rules) and ldo = N + 3: the forced kernel gives the CPU
     * backend's bytes and leaves the output padding poisoned. lda = K + 2 (even, off the rules):
     * refused with UNSUPPORTED naming lda, the output left untouched; AUTO runs it.
     */
    @Test
    void rawStridesMatchTheCpuBackend() {
        requireKernel();
        int n = 264;
        int k = 1024;
        int ldo = n + 3;
        long seed = 70;
        for (int m : new int[] {7, 300}) {
            for (DType out : OUTS) {
                Random rnd = new Random(seed++);
                W4a4 p = new W4a4(seed, m, n, k, true, true);
                byte[] poison = new byte[m * ldo * bytesOf(out)];
                Arrays.fill(poison, (byte) 0xFF);
                byte[] aOn = restride(p.a, m, k, k + 32, rnd);
                byte[] aOff = restride(p.a, m, k, k + 2, rnd);
                byte[] wOn = restride(p.w, n, k, k + 64, rnd);
                byte[][] got = new byte[3][];
                int[] backends = {LowbitNative.LOWBIT_BACKEND_CUDA, LowbitNative.LOWBIT_BACKEND_CPU};
                for (int c = 0; c < 2; c++) {
                    try (RawContext r = new RawContext(backends[c])) {
                        lowbit_buffer o = r.bytes(poison);
                        int config = c == 0 ? LowbitNative.LOWBIT_GEMM_SM80_S4 : LowbitNative.LOWBIT_GEMM_AUTO;
                        assertEquals(0, LowbitNative.lowbit_gemm_dequant_config(r.ctx, config, LowbitNative.LOWBIT_S4,
                                r.bytes(aOn), k + 32, LowbitNative.LOWBIT_S4, r.bytes(wOn), k + 64, m, n, k,
                                r.floats(p.as), m, r.floats(p.bs), n, r.floats(p.bias), code(out), o, ldo),
                                RawContext.error());
                        got[c] = r.read(o, poison.length);
                    }
                }
                String what = "W4A4 " + m + "x" + n + "x" + k + " lda " + (k + 32) + " ldb " + (k + 64) + " ldo " + ldo
                        + " -> " + out;
                assertPaddedEquals(what, got[0], got[1], m, n, ldo, bytesOf(out));
                try (RawContext r = new RawContext(LowbitNative.LOWBIT_BACKEND_CUDA)) {
                    lowbit_buffer o = r.bytes(poison);
                    lowbit_buffer ab = r.bytes(aOff);
                    lowbit_buffer wb = r.bytes(wOn);
                    int status = LowbitNative.lowbit_gemm_dequant_config(r.ctx, LowbitNative.LOWBIT_GEMM_SM80_S4,
                            LowbitNative.LOWBIT_S4, ab, k + 2, LowbitNative.LOWBIT_S4, wb, k + 64, m, n, k,
                            r.floats(p.as), m, r.floats(p.bs), n, null, code(out), o, ldo);
                    assertEquals(LowbitNative.LOWBIT_ERR_UNSUPPORTED, status, "lda = K + 2 forced: " + RawContext.error());
                    assertTrue(RawContext.error().contains("lda=" + (k + 2) + " is not a multiple of 32"), RawContext.error());
                    assertArrayEquals(poison, r.read(o, poison.length), "a refused request writes nothing");
                    assertEquals(0, LowbitNative.lowbit_gemm_dequant_config(r.ctx, LowbitNative.LOWBIT_GEMM_AUTO,
                            LowbitNative.LOWBIT_S4, ab, k + 2, LowbitNative.LOWBIT_S4, wb, k + 64, m, n, k,
                            r.floats(p.as), m, r.floats(p.bs), n, r.floats(p.bias), code(out), o, ldo),
                            RawContext.error());
                    got[2] = r.read(o, poison.length);
                }
                assertPaddedEquals(what + ", lda " + (k + 2) + " under AUTO", got[2], got[1], m, n, ldo, bytesOf(out));
            }
        }
    }

    /** got and want (m x ldo elements of eb bytes) agree on the n used columns; got's padding is 0xFF. */
    private static void assertPaddedEquals(String what, byte[] got, byte[] want, int m, int n, int ldo, int eb) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < ldo; j++) {
                for (int b = 0; b < eb; b++) {
                    int at = (i * ldo + j) * eb + b;
                    if (j >= n ? got[at] != (byte) 0xFF : got[at] != want[at]) {
                        fail(what + ": out[" + i + "][" + j + "] byte " + b + " = 0x" + Integer.toHexString(got[at] & 0xff)
                                + (j >= n ? " in the padding" : ", CPU backend 0x" + Integer.toHexString(want[at] & 0xff)));
                    }
                }
            }
        }
    }

    /**
     * Off the rules (K = 1000: K % 32; N = 1001 and 1002: N % 4) and S8 activations: forcing the
     * kernel is UNSUPPORTED naming the rule, the output stays poisoned and the context keeps working;
     * AUTO runs those shapes (on another kernel) with the CPU backend's bits; a CPU context refuses
     * the kernel too.
     */
    @Test
    void requestsOffTheRulesAreRefusedClearly() throws Exception {
        requireKernel();
        int[][] off = {{264, 1000, 0}, {1001, 1024, 1}, {1002, 64, 1}};
        String[] reason = {"K=1000 is not a multiple of 32", "N=1001 is not a multiple of 4",
            "N=1002 is not a multiple of 4"};
        for (int c = 0; c < off.length; c++) {
            W4a4 p = new W4a4(50 + c, 300, off[c][0], off[c][1], true, true);
            assertNotEquals(Context.SM80_S4, p.dispatched(gpu, DType.F16), p.name());
            try (Owned o = new Owned()) {
                QuantizedTensor qa = p.activations(gpu, o);
                QuantizedTensor qw = p.weights(gpu, o);
                Tensor y = o.add(gpu.allocate(DType.F16, p.m, p.n));
                KernelChecks.poison(y);
                short[] poisoned = y.toShortArray();
                LowbitException e = assertThrows(LowbitException.class,
                        () -> gpu.gemmInto(qa, qw, null, y, Context.SM80_S4));
                assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
                assertTrue(e.getMessage().contains(reason[c]), e.getMessage());
                assertTrue(e.getMessage().contains("LOWBIT_GEMM_SM80_S4"), e.getMessage());
                assertArrayEquals(poisoned, y.toShortArray(), p.name() + ": a refused request writes nothing");
                CudaExpandGemmTest.assertSameBits(p.name() + " -> F16 under AUTO", p.run(gpu, o, DType.F16, null),
                        p.run(cpu, o, DType.F16, null), p.n);
            }
        }
        try (Owned o = new Owned()) {
            W4a4 p = new W4a4(60, 64, 264, 1024, true, false);
            QuantizedTensor a8 = new QuantizedTensor(o.add(gpu.upload(new byte[64 * 1024], DType.S8, 64, 1024)),
                    o.add(gpu.upload(p.as, 1, 64)), Granularity.PER_ROW, 0);
            QuantizedTensor qw = p.weights(gpu, o);
            Tensor y = o.add(gpu.allocate(DType.F16, 64, 264));
            LowbitException e = assertThrows(LowbitException.class, () -> gpu.gemmInto(a8, qw, null, y, Context.SM80_S4));
            assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("S4 activations with S4 weights"), e.getMessage());
            assertNotEquals(Context.SM80_S4, gpu.gemmConfigFor(a8, qw, DType.F16), "S8 x S4 never takes the INT4 kernel");
            LowbitException onCpu = assertThrows(LowbitException.class,
                    () -> p.run(cpu, o, DType.F16, Context.SM80_S4));
            assertEquals(LowbitException.Status.UNSUPPORTED, onCpu.status(), onCpu.getMessage());
            LowbitException binaryOnCpu = assertThrows(LowbitException.class, () -> cpu.gemmKernelBinary(Context.SM80_S4));
            assertEquals(LowbitException.Status.UNSUPPORTED, binaryOnCpu.status(), binaryOnCpu.getMessage());
        }
        check(gpu, new W4a4(61, 7, 264, 1024, false, true), new DType[] {DType.F16});
    }

    // ---- which code ran, and when AUTO picks it ------------------------------------------------

    /**
     * After a forced run: the kernel's code comes from compute_80 PTX; on compute capability 8.x it
     * is the library's own sm_80 / sm_89 SASS, on any later GPU (an H100: sm_90) the driver's JIT
     * compilation of that PTX. Printed, so the test log states how the kernel ran.
     */
    @Test
    void theLoadedBinaryIsReported() throws Exception {
        requireKernel();
        check(gpu, new W4a4(80, 300, 264, 1024, true, true), new DType[] {DType.F16});
        KernelBinary b = gpu.gemmKernelBinary(Context.SM80_S4);
        System.out.println("CudaSm80S4GemmTest: the INT4 tensor-core kernel ran as " + b
                + (b.jit() ? ": ran through PTX JIT" : ": native SASS, no JIT"));
        assertEquals(80, b.ptxArch(), b.toString());
        if (b.jit()) {
            assertTrue(b.sassArch() >= 90, b.toString());
        } else {
            assertTrue(b.sassArch() == 80 || b.sassArch() == 89, b.toString());
        }
        LowbitException e = assertThrows(LowbitException.class, () -> gpu.gemmKernelBinary(Context.PORTABLE));
        assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
    }

    /**
     * AUTO takes the INT4 kernel for W4A4 on the rules exactly where it is native: compute
     * capability 8.x (the library's own SASS runs, no JIT); on later GPUs (INT4 MMA emulated)
     * never. Off the rules never.
     */
    @Test
    void autoPicksTheKernelOnComputeCapability8Only() throws Exception {
        boolean native8x = !requireKernel().jit();
        for (int m : MS) {
            for (int[] s : ON_RULES) {
                W4a4 p = new W4a4(90, m, s[0], s[1], true, false);
                for (DType out : OUTS) {
                    assertEquals(native8x, Context.SM80_S4.equals(p.dispatched(gpu, out)), p.name() + " -> " + out
                            + (native8x ? " on compute capability 8.x" : " on a GPU where INT4 MMA is emulated"));
                }
            }
        }
        assertNotEquals(Context.SM80_S4, new W4a4(91, 64, 264, 1000, true, false).dispatched(gpu, DType.F16));
        if (native8x) {
            // AUTO itself, through the dispatcher, on a shape that takes the INT4 kernel.
            W4a4 p = new W4a4(92, 300, 1000, 4096, true, true);
            try (Owned o = new Owned()) {
                CudaExpandGemmTest.assertSameBits(p.name() + " under AUTO", p.run(gpu, o, DType.BF16, null),
                        p.run(cpu, o, DType.BF16, null), p.n);
            }
        }
    }
}
