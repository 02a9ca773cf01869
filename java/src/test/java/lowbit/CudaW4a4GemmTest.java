package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import lowbit.CudaExpandGemmTest.Owned;
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * W4A4 -- packed S4 activations with packed S4 weights -- on the CUDA backend against the CPU
 * backend, bit for bit. Three kernels can run it: at M &lt;= 16 on the streaming kernel's rules (K %
 * 32, ldb % 32, weights 16-byte aligned) the weight-streaming decode kernel, which expands the
 * activations to INT8 as it stages them (native/src/cuda/gemv_stream.cu); at M &gt; 16 on an sm_90
 * GPU on the tuned kernels' rules (K % 16, N % 8, ldo % 8, F16/BF16 out, any even lda and ldb) both
 * operands expanded to INT8 copies in one launch (expand_weights.cu), then the CUTLASS INT8 wgmma
 * kernel; everything else the portable tiled kernel. All must give the CPU backend's bits.
 *
 * <p>Covered: M = 1, 7, 16, 17, 64, 300 (and 1031 for the dispatch); shapes on both kernels' rules,
 * on the tuned rules only (K % 32 == 16), on the streaming rules only (N % 8 != 0) and off both (K %
 * 16 != 0, odd K with a padding nibble per row); per-token and per-tensor activation scales, bias,
 * F32/F16/BF16 outputs; split-K and multi-stage decode shapes; K past the W8A8 decode kernel's
 * 131072 limit up to W4A4's 2^21 with the extreme codes; every tuned configuration forced; raw
 * strides (activation and weight rows not 16-byte aligned, padded outputs that must stay
 * poisoned); the quantizer feeding the GEMM end to end; the configuration the dispatch reports
 * (tuned, the W8A8 one of the shape, for M &gt; 16 on sm_90 shapes); the context's activation and
 * weight copies growing, shared by two threads, and an activation copy too large for the device.
 * Outputs are poisoned first, so an element never written shows. Without a CUDA device every test
 * skips (GpuTestBase); without an sm_90 GPU the tests of the tuned path skip, saying so.
 */
class CudaW4a4GemmTest extends GpuTestBase {
    static final int[] MS = {1, 7, 16, 17, 64, 300};
    static final DType[] OUTS = {DType.F32, DType.F16, DType.BF16};

    /**
     * N x K: on both kernels' rules; on the tuned rules only (K % 32 == 16: the streaming kernel
     * refuses); on the streaming rules only (N % 8 != 0); off both (K % 16 != 0; odd N and K).
     */
    static final int[][] SHAPES = {{264, 1024}, {1000, 4096}, {520, 1040}, {13, 96}, {1001, 1024}, {264, 1000},
        {77, 333}};

    /** Whether a request takes the expansion + tuned kernel path (dense strides). */
    static boolean expectTuned(boolean tuned, int m, int n, int k, DType out) {
        // M <= 16 runs the streaming kernel when it fits (dense S4 x S4: K % 32 == 0, K < 2^21), else,
        // like W8A8 and W4A8, the tuned kernel when the shape is on its rules
        boolean streams = m <= 16 && k % 32 == 0 && k < (1 << 21);
        return tuned && !streams && out != DType.F32 && k % 16 == 0 && n % 8 == 0;
    }

    /** One W4A4 problem: packed S4 activations and weights (any nibble, -8 and the row padding included). */
    static final class W4a4 {
        final int m, n, k;
        final byte[] a, w;
        final float[] as, bs, bias;

        W4a4(long seed, int m, int n, int k, boolean perToken, boolean withBias) {
            Random rnd = new Random(seed);
            this.m = m;
            this.n = n;
            this.k = k;
            a = new byte[m * ((k + 1) / 2)];
            rnd.nextBytes(a);
            w = new byte[n * ((k + 1) / 2)];
            rnd.nextBytes(w);
            as = CudaExpandGemmTest.scales(rnd, perToken ? m : 1, 1.0 / (7.0 * 7 * Math.sqrt(k) / 3));
            bs = CudaExpandGemmTest.scales(rnd, n, 30.0);
            bias = withBias ? CudaExpandGemmTest.gaussian(rnd, n) : null;
        }

        String name() {
            return "W4A4 " + m + "x" + n + "x" + k + (as.length > 1 ? " per-token" : " per-tensor")
                    + (bias != null ? " +bias" : "");
        }

        QuantizedTensor activations(Context ctx, Owned o) {
            return new QuantizedTensor(o.add(ctx.upload(a, DType.S4, m, k)), o.add(ctx.upload(as, 1, as.length)),
                    as.length > 1 ? Granularity.PER_ROW : Granularity.PER_TENSOR, 0);
        }

        QuantizedTensor weights(Context ctx, Owned o) {
            return new QuantizedTensor(o.add(ctx.upload(w, DType.S4, n, k)), o.add(ctx.upload(bs, 1, n)), Granularity.PER_ROW, 0);
        }

        /** Runs on ctx into a poisoned out tensor (owned by o); config null = the dispatch's choice. */
        Tensor run(Context ctx, Owned o, DType out, String config) {
            return CudaExpandGemmTest.gemm(ctx, o, activations(ctx, o), weights(ctx, o), bias, out, config);
        }

        /** The configuration ctx's dispatch reports for this problem. */
        String dispatched(Context ctx, DType out) throws Exception {
            try (Owned o = new Owned()) {
                return ctx.gemmConfigFor(activations(ctx, o), weights(ctx, o), out);
            }
        }
    }

    /** GPU (ctx) against the CPU backend for every output type in outs. */
    static void check(Context ctx, W4a4 p, DType[] outs, String config) throws Exception {
        for (DType out : outs) {
            String what = p.name() + " -> " + out + (config == null ? "" : " config " + config);
            try (Owned o = new Owned()) {
                CudaExpandGemmTest.assertSameBits(what, p.run(ctx, o, out, config), p.run(cpu, o, out, null), p.n);
            }
        }
    }

    /** The configuration ctx's dispatch reports for a dense (aType x bType) request of this shape. */
    static String dispatched(Context ctx, DType aType, DType bType, int m, int n, int k, DType out) {
        try (Tensor av = ctx.allocate(aType, m, k);
                Tensor wv = ctx.allocate(bType, n, k);
                Tensor s = ctx.allocate(DType.F32, 1, 1)) {
            return ctx.gemmConfigFor(new QuantizedTensor(av, s, Granularity.PER_TENSOR, 0),
                    new QuantizedTensor(wv, s, Granularity.PER_TENSOR, 0), out);
        }
    }

    // ---- against the CPU backend ------------------------------------------------------------------

    /** Every M and shape, scales per token and per tensor, with and without bias, every output type. */
    @Test
    void w4a4MatchesTheCpuBackend() throws Exception {
        boolean tuned = CudaExpandGemmTest.tunedKernelsRun();
        long seed = 100;
        for (int m : MS) {
            for (int[] s : SHAPES) {
                W4a4 p = new W4a4(seed, m, s[0], s[1], seed % 2 == 0, seed % 3 != 0);
                seed++;
                for (DType out : OUTS) {
                    boolean expanded = !dispatched(gpu, DType.S4, DType.S4, m, p.n, p.k, out).equals(Context.PORTABLE);
                    assertEquals(expectTuned(tuned, m, p.n, p.k, out), expanded, p.name() + " -> " + out + " dispatch");
                }
                check(gpu, p, OUTS, null);
            }
        }
    }

    /**
     * Decode shapes that split K over many blocks (N = 24, K = 16384) and that walk several
     * 2048-value activation stages per block (N = 9731: many channel tiles, a partial last one).
     */
    @Test
    void decodeSplitsAndStagesMatchTheCpuBackend() throws Exception {
        long seed = 200;
        for (int m : new int[] {1, 7, 16}) {
            check(gpu, new W4a4(seed++, m, 24, 16384, true, true), OUTS, null);
            check(gpu, new W4a4(seed++, m, 9731, 16384, m % 2 == 0, false), new DType[] {DType.F16}, null);
        }
    }

    /** Unit scales through S32 outputs (lowbit_gemm_s32): exact against long arithmetic, -8 included. */
    @Test
    void integerProductIsExact() {
        long seed = 300;
        for (int m : MS) {
            for (int[] s : SHAPES) {
                KernelChecks.gemmS32(gpu, seed++, m, s[0], s[1], DType.S4, DType.S4);
            }
        }
    }

    /**
     * The streaming kernel accumulates 16·acc: with S4 activations |q·a| &lt;= 64, so it takes K up to
     * 2^21 - 32 (where 16·64·K is just below 2^31), past the 131072 of S8 activations; at 2^21 it
     * refuses and the tiled kernel runs. All codes -8 (the largest product, acc = 64·K) and random
     * codes, exact against long arithmetic.
     */
    @Test
    void decodeKPastTheW4a8LimitIsExact() {
        int n = 24;
        long seed = 400;
        for (int k : new int[] {131072 + 128, (1 << 21) - 32, 1 << 21}) {
            for (int m : new int[] {1, 16}) {
                for (boolean extreme : new boolean[] {true, false}) {
                    Random rnd = new Random(seed++);
                    byte[] a = new byte[m * k / 2];
                    byte[] w = new byte[n * k / 2];
                    if (extreme) {
                        Arrays.fill(a, (byte) 0x88);
                        Arrays.fill(w, (byte) 0x88);
                    } else {
                        rnd.nextBytes(a);
                        rnd.nextBytes(w);
                    }
                    try (Tensor ta = gpu.upload(a, DType.S4, m, k);
                            Tensor tw = gpu.upload(w, DType.S4, n, k);
                            Tensor c = gpu.allocate(DType.S32, m, n)) {
                        KernelChecks.poison(c);
                        gpu.gemmInto(ta, tw, c);
                        int[] got = c.toIntArray();
                        for (int i = 0; i < m; i++) {
                            for (int j = 0; j < n; j++) {
                                long want = dotS4(a, i, w, j, k);
                                if (got[i * n + j] != want) {
                                    fail("W4A4 S32 " + m + "x" + n + "x" + k + (extreme ? " all -8" : " random") + ": C["
                                            + i + "][" + j + "] = " + got[i * n + j] + ", want " + want);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /** Row i of packed a times row j of packed w over k nibbles (dense rows of k / 2 bytes, k even). */
    private static long dotS4(byte[] a, int i, byte[] w, int j, int k) {
        long sum = 0;
        int ai = i * (k / 2);
        int wj = j * (k / 2);
        for (int b = 0; b < k / 2; b++) {
            int x = a[ai + b];
            int y = w[wj + b];
            sum += (long) ((x << 28) >> 28) * ((y << 28) >> 28) + (long) ((x << 24) >> 28) * ((y << 24) >> 28);
        }
        return sum;
    }

    /**
     * The quantizer feeding the GEMM, end to end (KernelChecks.linear): x quantized on the GPU to
     * packed S4 per token or per tensor, the weights per channel; the outputs equal the float32-step
     * reference bit for bit and stay within W4A4's quantization error of the FP64 product.
     */
    @Test
    void quantizedLayerMatchesTheReference() {
        long seed = 500;
        for (int m : new int[] {7, 64, 300}) {
            for (DType out : OUTS) {
                KernelChecks.linear(gpu, seed++, m, 264, 1024, 4, 4, Granularity.PER_ROW, true, out, 0.6);
                KernelChecks.linear(gpu, seed++, m, 520, 1040, 4, 4, Granularity.PER_TENSOR, false, out, 0.8);
            }
        }
    }

    // ---- the dispatch ---------------------------------------------------------------------------

    /**
     * On the fused 4-bit kernel's rules (K % 32, ldb % 32) at M &gt; 16 lowbit_gemm_config_select
     * reports {@link Context#SM90_W4}; on the other sm_90 shapes (K % 16, N % 8, F16/BF16 out) a
     * tuned configuration for W4A4 -- the one W8A8 and W4A8 get for the same shape, since the
     * expanded copies run exactly that GEMM -- also with S4 rows that are not 16-byte aligned (any
     * even lda and ldb: the copies are dense); the portable kernel for F32 outputs, shapes off the
     * rules and M &lt;= 16 (the streaming kernel). A tuned configuration forced off the rules is
     * refused with the reason.
     */
    @Test
    void tunedConfigurationsAreChosenOnSm90Shapes() throws Exception {
        CudaExpandGemmTest.requireTunedKernels();
        int[][] onRules = {{264, 1024}, {1000, 4096}, {520, 1040}, {4096, 4096}};
        for (int m : new int[] {17, 64, 300, 1031, 4096}) {
            for (int[] s : onRules) {
                int n = s[0];
                int k = s[1];
                String what = "W4A4 " + m + "x" + n + "x" + k;
                for (DType out : new DType[] {DType.F16, DType.BF16}) {
                    String config = dispatched(gpu, DType.S4, DType.S4, m, n, k, out);
                    assertNotEquals(Context.PORTABLE, config, what + " -> " + out);
                    if (k % 32 == 0) {  // the fused 4-bit kernel's rules: it runs W4A4 and W4A8 alike
                        assertEquals(Context.SM90_W4, config, what + " -> " + out);
                        assertEquals(Context.SM90_W4, dispatched(gpu, DType.S8, DType.S4, m, n, k, out), what);
                        continue;
                    }
                    assertTrue(Lowbit.gemmConfigs().contains(config), config);
                    assertEquals(dispatched(gpu, DType.S8, DType.S8, m, n, k, out), config,
                            what + ": W4A4 and W8A8 of one shape take the same configuration");
                    assertEquals(dispatched(gpu, DType.S8, DType.S4, m, n, k, out), config,
                            what + ": W4A4 and W4A8 of one shape take the same configuration");
                }
                assertEquals(Context.PORTABLE, dispatched(gpu, DType.S4, DType.S4, m, n, k, DType.F32), what + " -> F32");
            }
            assertEquals(Context.PORTABLE, dispatched(gpu, DType.S4, DType.S4, m, 1001, 1024, DType.F16), "N % 8");
            assertEquals(Context.PORTABLE, dispatched(gpu, DType.S4, DType.S4, m, 264, 1000, DType.F16), "K % 16");
        }
        for (int m : new int[] {1, 7, 16}) {
            assertEquals(Context.PORTABLE, dispatched(gpu, DType.S4, DType.S4, m, 4096, 4096, DType.F16),
                    "M = " + m + " runs the streaming kernel");
        }
        // Raw strides: S4 rows of K + 2 nibbles (not 16-byte aligned) still take the tuned kernels.
        try (RawContext r = new RawContext(LowbitNative.LOWBIT_BACKEND_CUDA)) {
            int[] config = new int[1];
            assertEquals(0, LowbitNative.lowbit_gemm_config_select(r.ctx, LowbitNative.LOWBIT_S4, 1026,
                    LowbitNative.LOWBIT_S4, 1026, 300, 264, 1024, LowbitNative.LOWBIT_F16, 264, config), RawContext.error());
            assertTrue(config[0] >= 0, "lda = ldb = K + 2: config " + config[0]);
            assertEquals(0, LowbitNative.lowbit_gemm_config_select(r.ctx, LowbitNative.LOWBIT_S4, 1026,
                    LowbitNative.LOWBIT_S4, 1026, 300, 264, 1024, LowbitNative.LOWBIT_F16, 267, config), RawContext.error());
            assertEquals(LowbitNative.LOWBIT_GEMM_PORTABLE, config[0], "ldo % 8 != 0");
        }
        W4a4 off = new W4a4(600, 64, 264, 1000, true, true);
        try (Owned o = new Owned()) {
            for (String config : Lowbit.gemmConfigs()) {
                LowbitException e = assertThrows(LowbitException.class, () -> off.run(gpu, o, DType.F16, config));
                assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
                assertTrue(e.getMessage().contains("K=1000 is not a multiple of 16"), e.getMessage());
                e = assertThrows(LowbitException.class, () -> new W4a4(601, 64, 264, 1024, false, false)
                        .run(gpu, o, DType.F32, config));
                assertTrue(e.getMessage().contains("F16 or BF16"), e.getMessage());
            }
        }
        // The context keeps working after the refusals.
        check(gpu, new W4a4(602, 64, 264, 1024, true, true), new DType[] {DType.F16}, null);
    }

    /** Every tuned configuration, forced, on W4A4's expanded copies; the portable kernel forced too. */
    @Test
    void everyConfigurationRunsW4a4() throws Exception {
        CudaExpandGemmTest.requireTunedKernels();
        long seed = 700;
        List<String> configs = new ArrayList<>(Lowbit.gemmConfigs());
        configs.add(Context.PORTABLE);
        for (String config : configs) {
            check(gpu, new W4a4(seed++, 300, 264, 1024, true, true), new DType[] {DType.F16}, config);
            check(gpu, new W4a4(seed++, 17, 520, 1040, false, false), new DType[] {DType.BF16}, config);
            check(gpu, new W4a4(seed++, 1031, 1000, 4096, true, false), new DType[] {DType.F16}, config);
        }
    }

    // ---- raw strides through the C ABI ----------------------------------------------------------

    private static int code(DType t) {
        return t == DType.F32 ? LowbitNative.LOWBIT_F32 : t == DType.F16 ? LowbitNative.LOWBIT_F16 : LowbitNative.LOWBIT_BF16;
    }

    private static int bytesOf(DType t) {
        return t == DType.F32 ? 4 : 2;
    }

    /**
     * Activations and weights at strides K + 2 nibbles (rows not 16-byte aligned: the expansion's
     * and the streaming kernel's byte loads; the streaming kernel refuses such weights) and K + 64
     * (aligned, padded), the padding nibbles random (never read as values); outputs at ldo = N + 8
     * (the tuned path) and N + 3 (the portable one), whose padding must stay poisoned.
     */
    @Test
    void rawStridesMatchTheCpuBackend() {
        int n = 264;
        int k = 1024;
        int[][] pads = {{2, 64}, {64, 2}, {64, 64}};
        long seed = 800;
        for (int m : new int[] {7, 16, 64, 300}) {
            for (int[] pad : pads) {
                for (int ldoPad : new int[] {8, 3}) {
                    Random rnd = new Random(seed++);
                    int lda = k + pad[0];
                    int ldb = k + pad[1];
                    int ldo = n + ldoPad;
                    byte[] a = new byte[m * lda / 2];
                    byte[] w = new byte[n * ldb / 2];
                    rnd.nextBytes(a);
                    rnd.nextBytes(w);
                    float[] as = CudaExpandGemmTest.scales(rnd, m, 1.0 / (7.0 * 7 * Math.sqrt(k) / 3));
                    float[] bs = CudaExpandGemmTest.scales(rnd, n, 1.0);
                    float[] bias = CudaExpandGemmTest.gaussian(rnd, n);
                    byte[][][] got = new byte[OUTS.length][2][];
                    int[] backends = {LowbitNative.LOWBIT_BACKEND_CUDA, LowbitNative.LOWBIT_BACKEND_CPU};
                    for (int c = 0; c < 2; c++) {
                        try (RawContext r = new RawContext(backends[c])) {
                            lowbit_buffer ab = r.bytes(a);
                            lowbit_buffer wb = r.bytes(w);
                            lowbit_buffer asb = r.floats(as);
                            lowbit_buffer bsb = r.floats(bs);
                            lowbit_buffer biasb = r.floats(bias);
                            for (int t = 0; t < OUTS.length; t++) {
                                byte[] poison = new byte[m * ldo * bytesOf(OUTS[t])];
                                Arrays.fill(poison, (byte) 0xFF);
                                lowbit_buffer o = r.bytes(poison);
                                assertEquals(0, LowbitNative.lowbit_gemm_dequant(r.ctx, LowbitNative.LOWBIT_S4, ab, lda,
                                        LowbitNative.LOWBIT_S4, wb, ldb, m, n, k, asb, m, bsb, n, biasb, code(OUTS[t]),
                                        o, ldo), RawContext.error());
                                got[t][c] = r.read(o, poison.length);
                            }
                        }
                    }
                    for (int t = 0; t < OUTS.length; t++) {
                        String what = "W4A4 " + m + "x" + n + "x" + k + " lda " + lda + " ldb " + ldb + " ldo " + ldo
                                + " -> " + OUTS[t];
                        assertSameOutputs(what, got[t][0], got[t][1], m, n, ldo, bytesOf(OUTS[t]));
                    }
                }
            }
        }
    }

    /** CUDA output (m x ldo, n columns used) against the CPU backend's; the padding columns must stay poisoned. */
    private static void assertSameOutputs(String what, byte[] gpuOut, byte[] cpuOut, int m, int n, int ldo, int eb) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < ldo; j++) {
                for (int b = 0; b < eb; b++) {
                    int at = (i * ldo + j) * eb + b;
                    if (j >= n) {
                        if (gpuOut[at] != (byte) 0xFF) {
                            fail(what + ": output padding [" + i + "][" + j + "] was written");
                        }
                    } else if (gpuOut[at] != cpuOut[at]) {
                        fail(what + ": out[" + i + "][" + j + "] differs from the CPU backend's (byte " + b + ": 0x"
                                + Integer.toHexString(gpuOut[at] & 0xff) + " vs 0x" + Integer.toHexString(cpuOut[at] & 0xff)
                                + ")");
                    }
                }
            }
        }
    }

    // ---- the context's INT8 copies --------------------------------------------------------------

    /**
     * A fresh context: W4A4 requests whose activation copy (M x K) and weight copy (N x K) grow over
     * the calls, W4A8 and DGQ requests sharing the weight copy in between, then smaller requests
     * served without shrinking; every result is the CPU backend's.
     */
    @Test
    void theCopiesGrowThenServeSmallerRequests() throws Exception {
        DType[] outs = {DType.F16, DType.BF16};
        try (Context ctx = Context.open(Backend.CUDA)) {
            check(ctx, new W4a4(900, 64, 264, 1024, true, true), outs, null);
            check(ctx, new W4a4(901, 1031, 1000, 4096, false, false), outs, null);
            CudaExpandGemmTest.checkW4a8(ctx, new CudaExpandGemmTest.W4a8(902, 257, 2048, 8192, true, true), outs, null);
            check(ctx, new W4a4(903, 2048, 264, 8192, true, false), outs, null);
            CudaExpandGemmTest.checkDgq(ctx, new CudaExpandGemmTest.Dgq(904, 64, 264, 1024, 128, true, true, true), outs);
            check(ctx, new W4a4(905, 17, 520, 1040, true, true), outs, null);
            check(ctx, new W4a4(906, 7, 264, 1024, false, true), OUTS, null);
        }
    }

    /**
     * Two threads share one fresh context: W4A4 (300 x 1000 x 4096; activation and weight copies) and
     * W4A8 (1031 x 264 x 1024; the weight copy), so the weight copy is grown and reused while the
     * other thread's expansion and GEMM are queued: an expansion and the GEMM reading it must never be
     * separated by the other thread's expansion.
     */
    @Test
    void twoThreadsShareTheCopies() throws Exception {
        W4a4 w44 = new W4a4(950, 300, 1000, 4096, true, true);
        CudaExpandGemmTest.W4a8 w48 = new CudaExpandGemmTest.W4a8(951, 1031, 264, 1024, true, false);
        short[] want44;
        short[] want48;
        try (Owned o = new Owned()) {
            want44 = w44.run(cpu, o, DType.F16, null).toShortArray();
            want48 = w48.run(cpu, o, DType.F16, null).toShortArray();
        }
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (Context ctx = Context.open(Backend.CUDA);
                Owned o = new Owned()) {
            QuantizedTensor qa44 = new QuantizedTensor(o.add(ctx.upload(w44.a, DType.S4, w44.m, w44.k)),
                    o.add(ctx.upload(w44.as, 1, w44.as.length)), Granularity.PER_ROW, 0);
            QuantizedTensor qw44 = new QuantizedTensor(o.add(ctx.upload(w44.w, DType.S4, w44.n, w44.k)),
                    o.add(ctx.upload(w44.bs, 1, w44.n)), Granularity.PER_ROW, 0);
            Tensor bias44 = o.add(ctx.upload(w44.bias, 1, w44.n));
            Tensor y44 = o.add(ctx.allocate(DType.F16, w44.m, w44.n));
            QuantizedTensor qa48 = new QuantizedTensor(o.add(ctx.upload(w48.a, DType.S8, w48.m, w48.k)),
                    o.add(ctx.upload(w48.as, 1, w48.as.length)), Granularity.PER_ROW, 0);
            QuantizedTensor qw48 = new QuantizedTensor(o.add(ctx.upload(w48.w, DType.S4, w48.n, w48.k)),
                    o.add(ctx.upload(w48.bs, 1, w48.n)), Granularity.PER_ROW, 0);
            Tensor y48 = o.add(ctx.allocate(DType.F16, w48.m, w48.n));
            Future<?> t44 = pool.submit(() -> {
                for (int i = 0; i < 40; i++) {
                    KernelChecks.poison(y44);
                    ctx.gemmInto(qa44, qw44, bias44, y44);
                    CudaExpandGemmTest.assertSameBits("thread W4A4, round " + i, y44.toShortArray(), want44, w44.n);
                }
            });
            Future<?> t48 = pool.submit(() -> {
                for (int i = 0; i < 40; i++) {
                    KernelChecks.poison(y48);
                    ctx.gemmInto(qa48, qw48, null, y48);
                    CudaExpandGemmTest.assertSameBits("thread W4A8, round " + i, y48.toShortArray(), want48, w48.n);
                }
            });
            t44.get();
            t48.get();
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * An activation copy larger than the device: S4 activations of 56 GiB (allocated, never written:
     * the request fails before any kernel reads them) need a 112 GiB INT8 copy, more than an H100 or
     * H200 has left. The call fails with OUT_OF_MEMORY naming the activation copy and its size; the
     * context then still runs W4A4 requests (both copies allocated again).
     */
    @Test
    void anActivationCopyTooLargeIsOutOfMemoryAndTheContextKeepsWorking() throws Exception {
        CudaExpandGemmTest.requireTunedKernels();
        int n = 8;
        int k = 131072;
        int m = 56 << 14;  // m * k / 2 bytes = 56 GiB
        try (Context ctx = Context.open(Backend.CUDA)) {
            Tensor a;
            try {
                a = ctx.allocate(DType.S4, m, k);
            } catch (NativeOutOfMemoryException e) {
                Assumptions.abort("the GPU cannot hold the 56 GiB of S4 activations this test needs: " + e.getMessage());
                return;
            }
            try (Tensor av = a;
                    Tensor wv = ctx.upload(new byte[n * k / 2], DType.S4, n, k);
                    Tensor s = ctx.upload(new float[] {1f}, 1, 1);
                    Tensor y = ctx.allocate(DType.F16, m, n)) {
                QuantizedTensor qa = new QuantizedTensor(av, s, Granularity.PER_TENSOR, 0);
                QuantizedTensor qw = new QuantizedTensor(wv, s, Granularity.PER_TENSOR, 0);
                assertNotEquals(Context.PORTABLE, ctx.gemmConfigFor(qa, qw, DType.F16));
                NativeOutOfMemoryException e = assertThrows(NativeOutOfMemoryException.class,
                        () -> ctx.gemmInto(qa, qw, null, y));
                assertEquals(LowbitException.Status.OUT_OF_MEMORY, e.status());
                assertTrue(e.getMessage().contains("INT8 copy of the 4-bit activations"), e.getMessage());
                assertTrue(e.getMessage().contains(Long.toString((long) m * k)), e.getMessage());
                ctx.synchronize();
            }
            check(ctx, new W4a4(990, 300, 1000, 4096, true, true), new DType[] {DType.F16}, null);
            check(ctx, new W4a4(991, 7, 264, 1024, false, false), new DType[] {DType.BF16}, null);
        }
    }
}
