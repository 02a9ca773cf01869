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
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * 4-bit weights at M &gt; 16 on the CUDA backend: W4A8 (packed S4 weights, per-channel scales) and
 * DGQ A8W4 (codes, U8 group scales, optional S8 zero points) against the CPU backend, bit for bit.
 * On an sm_90 GPU, requests on the fused kernel's rules (K % 32, ldb % 32, ...) run it
 * (CudaFusedW4GemmTest); the rest on the tuned kernels' alignment rules (K % 16, N % 8, lda % 16,
 * ldo % 8, F16/BF16 out), and every request forced onto a tuned configuration, expand the weights
 * to an INT8 copy (native/src/cuda/expand_weights.cu) and run the CUTLASS INT8 wgmma kernel; the
 * rest (and every request on other GPUs) runs the portable tiled kernel. Both must give the CPU backend's bits. Covered: M = 17, 64, 257, 1031; shapes on
 * and off the rules, K an odd multiple of 16 (the expansion's last chunk half full, rows not
 * 16-byte aligned); DGQ signed and with zero points, G = 32, 64, 128 and groups that are no
 * multiple of 32; DGQ weights that wrap (lowbit.h: the low 8 bits of (q - z) * S2); per-token and
 * per-tensor activation scales, bias, F32/F16/BF16 outputs; every tuned configuration forced on S4
 * weights; raw strides; the context's expansion workspace growing over calls, shrinking requests
 * after, two threads sharing it, and an allocation it cannot get (a clear OUT_OF_MEMORY, after
 * which the context still works). Outputs are poisoned first, so an element never written shows.
 */
class CudaExpandGemmTest extends GpuTestBase {
    static final int[] MS = {17, 64, 257, 1031};
    static final DType[] OUTS = {DType.F32, DType.F16, DType.BF16};

    /** N x K: on the tuned kernels' rules (1040: K % 32 == 16, rows not 16-byte aligned), then off them. */
    static final int[][] ON_RULES = {{264, 1024}, {1000, 4096}, {520, 1040}};
    static final int[][] OFF_RULES = {{1001, 1024}, {264, 1000}};

    // ---- helpers ------------------------------------------------------------------------------

    /** Whether this build and GPU run the tuned sm_90 kernels (else everything runs the portable one). */
    static boolean tunedKernelsRun() {
        if (Lowbit.gemmConfigs().isEmpty()) {
            return false;
        }
        try (Tensor a = gpu.allocate(DType.S8, 64, 16);
                Tensor b = gpu.allocate(DType.S8, 8, 16);
                Tensor s = gpu.allocate(DType.F32, 1, 1)) {
            QuantizedTensor qa = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
            QuantizedTensor qb = new QuantizedTensor(b, s, Granularity.PER_TENSOR, 0);
            return !gpu.gemmConfigFor(qa, qb, DType.F16).equals(Context.PORTABLE);
        }
    }

    static void requireTunedKernels() {
        Assumptions.assumeTrue(tunedKernelsRun(), "no sm_90 GPU or no sm_90a kernels in this build: "
                + "the expansion path does not run here");
    }

    /** Whether the expansion + tuned kernel path should take a request with dense strides. */
    private static boolean expectExpanded(boolean tuned, int n, int k, DType out) {
        return tuned && out != DType.F32 && k % 16 == 0 && n % 8 == 0;
    }

    /**
     * {@code qa · qwᵀ} (+ {@code bias}, may be null) on ctx into a poisoned {@code out} tensor owned by
     * {@code o}; config null = the dispatch's choice. The 4-bit GEMM tests' common last step.
     */
    static Tensor gemm(Context ctx, Owned o, QuantizedTensor qa, QuantizedTensor qw, float[] bias, DType out, String config) {
        long n = qw.values().rows();
        Tensor bt = bias == null ? null : o.add(ctx.upload(bias, 1, n));
        Tensor y = o.add(ctx.allocate(out, qa.values().rows(), n));
        KernelChecks.poison(y);
        if (config == null) {
            ctx.gemmInto(qa, qw, bt, y);
        } else {
            ctx.gemmInto(qa, qw, bt, y, config);
        }
        return y;
    }

    /** Owns the tensors of one problem. */
    static final class Owned implements AutoCloseable {
        final List<AutoCloseable> list = new ArrayList<>();

        <T extends AutoCloseable> T add(T t) {
            list.add(t);
            return t;
        }

        @Override
        public void close() throws Exception {
            for (int i = list.size() - 1; i >= 0; i--) {
                list.get(i).close();
            }
        }
    }

    static byte[] randomBytes(Random rnd, int count, int lo, int hi) {
        byte[] v = new byte[count];
        for (int i = 0; i < count; i++) {
            v[i] = (byte) (lo + rnd.nextInt(hi - lo + 1));
        }
        return v;
    }

    static float[] scales(Random rnd, int count, double magnitude) {
        float[] s = new float[count];
        for (int i = 0; i < count; i++) {
            s[i] = (float) (magnitude * (0.25 + rnd.nextDouble()));
        }
        return s;
    }

    static float[] gaussian(Random rnd, int count) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    /** Asserts equal bits (same dtype and shape), naming the first difference. */
    static void assertSameBits(String what, Tensor got, Tensor want, int n) {
        if (got.dtype() == DType.F32) {
            float[] g = got.toFloatArray();
            float[] w = want.toFloatArray();
            for (int i = 0; i < w.length; i++) {
                if (Float.floatToRawIntBits(g[i]) != Float.floatToRawIntBits(w[i])) {
                    fail(what + ": out[" + i / n + "][" + i % n + "] = " + g[i] + " (0x"
                            + Integer.toHexString(Float.floatToRawIntBits(g[i])) + "), CPU backend " + w[i]);
                }
            }
        } else {
            assertSameBits(what, got.toShortArray(), want.toShortArray(), n);
        }
    }

    static void assertSameBits(String what, short[] got, short[] want, int n) {
        for (int i = 0; i < want.length; i++) {
            if (got[i] != want[i]) {
                fail(what + ": out[" + i / n + "][" + i % n + "] = 0x" + Integer.toHexString(got[i] & 0xffff)
                        + ", CPU backend 0x" + Integer.toHexString(want[i] & 0xffff));
            }
        }
    }

    /** One W4A8 problem: S8 activations, packed S4 weights (any nibble, -8 included), scales, bias. */
    static final class W4a8 {
        final int m, n, k;
        final byte[] a, w;
        final float[] as, bs, bias;

        W4a8(long seed, int m, int n, int k, boolean perToken, boolean withBias) {
            Random rnd = new Random(seed);
            this.m = m;
            this.n = n;
            this.k = k;
            a = randomBytes(rnd, m * k, -128, 127);
            w = new byte[n * ((k + 1) / 2)];
            rnd.nextBytes(w);
            as = scales(rnd, perToken ? m : 1, 1.0 / (127.0 * 7 * Math.sqrt(k) / 3));
            bs = scales(rnd, n, 30.0);
            bias = withBias ? gaussian(rnd, n) : null;
        }

        String name() {
            return "W4A8 " + m + "x" + n + "x" + k + (as.length > 1 ? " per-token" : " per-tensor")
                    + (bias != null ? " +bias" : "");
        }

        /** Runs on ctx into a poisoned out tensor (owned by o); config null = the dispatch's choice. */
        Tensor run(Context ctx, Owned o, DType out, String config) {
            QuantizedTensor qa = new QuantizedTensor(o.add(ctx.upload(a, DType.S8, m, k)),
                    o.add(ctx.upload(as, 1, as.length)), as.length > 1 ? Granularity.PER_ROW : Granularity.PER_TENSOR, 0);
            QuantizedTensor qw = new QuantizedTensor(o.add(ctx.upload(w, DType.S4, n, k)), o.add(ctx.upload(bs, 1, n)),
                    Granularity.PER_ROW, 0);
            return gemm(ctx, o, qa, qw, bias, out, config);
        }

        String dispatched(Context ctx, DType out) {
            try (Tensor av = ctx.allocate(DType.S8, m, k);
                    Tensor wv = ctx.allocate(DType.S4, n, k);
                    Tensor s = ctx.allocate(DType.F32, 1, 1)) {
                return ctx.gemmConfigFor(new QuantizedTensor(av, s, Granularity.PER_TENSOR, 0),
                        new QuantizedTensor(wv, s, Granularity.PER_TENSOR, 0), out);
            }
        }
    }

    /** GPU (ctx) against the CPU backend for every output type in outs. */
    static void checkW4a8(Context ctx, W4a8 p, DType[] outs, String config) throws Exception {
        for (DType out : outs) {
            String what = p.name() + " -> " + out + (config == null ? "" : " config " + config);
            try (Owned o = new Owned()) {
                assertSameBits(what, p.run(ctx, o, out, config), p.run(cpu, o, out, null), p.n);
            }
        }
    }

    /** One DGQ problem with weights that pass lowbit_dgq_check (DgqKernelTest's generator). */
    static final class Dgq {
        final int m, n, k, group;
        final byte[] a, codes, s2, z;
        final float[] as, cs, bias;

        Dgq(long seed, int m, int n, int k, int group, boolean zeroPoints, boolean perToken, boolean withBias) {
            Random rnd = new Random(seed);
            this.m = m;
            this.n = n;
            this.k = k;
            this.group = group;
            DgqKernelTest.Weights w = new DgqKernelTest.Weights(rnd, n, k, group, zeroPoints);
            codes = w.packed(k + (k & 1));
            s2 = w.s2Bytes();
            z = w.zBytes();
            cs = w.cs;
            a = randomBytes(rnd, m * k, -128, 127);
            as = scales(rnd, perToken ? m : 1, 1.0 / (127.0 * 127 * Math.sqrt(k)));
            bias = withBias ? gaussian(rnd, n) : null;
        }

        String name() {
            return "DGQ G=" + group + (z != null ? " zero points " : " signed ") + m + "x" + n + "x" + k
                    + (as.length > 1 ? " per-token" : " per-tensor") + (bias != null ? " +bias" : "");
        }

        Tensor run(Context ctx, Owned o, DType out) {
            DgqWeights dw = o.add(ctx.uploadDgq(codes, s2, z, cs, n, k, group));
            QuantizedTensor qa = new QuantizedTensor(o.add(ctx.upload(a, DType.S8, m, k)),
                    o.add(ctx.upload(as, 1, as.length)), as.length > 1 ? Granularity.PER_ROW : Granularity.PER_TENSOR, 0);
            Tensor bt = bias == null ? null : o.add(ctx.upload(bias, 1, n));
            Tensor y = o.add(ctx.allocate(out, m, n));
            KernelChecks.poison(y);
            ctx.gemmDgqInto(qa, dw, bt, y);
            return y;
        }
    }

    static void checkDgq(Context ctx, Dgq p, DType[] outs) throws Exception {
        for (DType out : outs) {
            try (Owned o = new Owned()) {
                assertSameBits(p.name() + " -> " + out, p.run(ctx, o, out), p.run(cpu, o, out), p.n);
            }
        }
    }

    // ---- the dispatch -------------------------------------------------------------------------

    /**
     * S4 weights at M &gt; 16 on the fused kernel's rules (K % 32) report {@link Context#SM90_W4}; on
     * the tuned rules only (K % 32 == 16) the configuration the S8 weights of the same shape get (the
     * expanded copy runs it); F32 outputs, shapes off the rules and decode (M &lt;= 16, the
     * streaming kernel) report the portable kernel; a forced configuration off the rules is refused.
     */
    @Test
    void s4WeightsDispatchToTheTunedKernels() throws Exception {
        requireTunedKernels();
        for (int m : MS) {
            for (int[] s : ON_RULES) {
                W4a8 p = new W4a8(1, m, s[0], s[1], true, false);
                String config = p.dispatched(gpu, DType.F16);
                assertNotEquals(Context.PORTABLE, config, p.name());
                if (s[1] % 32 == 0) {  // on the fused kernel's rules (K, ldb % 32): it runs, not the expansion
                    assertEquals(Context.SM90_W4, config, p.name());
                    assertEquals(Context.PORTABLE, p.dispatched(gpu, DType.F32), p.name() + " -> F32");
                    continue;
                }
                try (Tensor av = gpu.allocate(DType.S8, m, s[1]);
                        Tensor wv = gpu.allocate(DType.S8, s[0], s[1]);
                        Tensor sc = gpu.allocate(DType.F32, 1, 1)) {
                    assertEquals(gpu.gemmConfigFor(new QuantizedTensor(av, sc, Granularity.PER_TENSOR, 0),
                            new QuantizedTensor(wv, sc, Granularity.PER_TENSOR, 0), DType.F16), config,
                            "S4 and S8 weights of " + p.name() + " take the same configuration");
                }
                assertEquals(Context.PORTABLE, p.dispatched(gpu, DType.F32), p.name() + " -> F32");
            }
            for (int[] s : OFF_RULES) {
                W4a8 p = new W4a8(1, m, s[0], s[1], true, false);
                assertEquals(Context.PORTABLE, p.dispatched(gpu, DType.BF16), p.name());
            }
        }
        assertEquals(Context.PORTABLE, new W4a8(1, 16, 264, 1024, true, false).dispatched(gpu, DType.F16),
                "M = 16 runs the streaming kernel");
        W4a8 off = new W4a8(2, 64, 264, 1000, true, true);
        try (Owned o = new Owned()) {
            for (String config : Lowbit.gemmConfigs()) {
                LowbitException e = assertThrows(LowbitException.class, () -> off.run(gpu, o, DType.F16, config));
                assertEquals(LowbitException.Status.UNSUPPORTED, e.status(), e.getMessage());
                assertTrue(e.getMessage().contains("K=1000 is not a multiple of 16"), e.getMessage());
            }
        }
    }

    // ---- W4A8 and DGQ against the CPU backend ----------------------------------------------------

    @Test
    void w4a8MatchesTheCpuBackend() throws Exception {
        boolean tuned = tunedKernelsRun();
        long seed = 100;
        for (int m : MS) {
            for (int[][] shapes : new int[][][] {ON_RULES, OFF_RULES}) {
                for (int[] s : shapes) {
                    W4a8 p = new W4a8(seed, m, s[0], s[1], seed % 2 == 0, seed % 3 != 0);
                    seed++;
                    for (DType out : OUTS) {
                        boolean expanded = !p.dispatched(gpu, out).equals(Context.PORTABLE);
                        assertEquals(expectExpanded(tuned, p.n, p.k, out), expanded, p.name() + " -> " + out);
                    }
                    checkW4a8(gpu, p, OUTS, null);
                }
            }
        }
    }

    /** Every tuned configuration, forced, on expanded S4 weights. */
    @Test
    void everyConfigurationRunsExpandedWeights() throws Exception {
        requireTunedKernels();
        long seed = 200;
        List<String> configs = new ArrayList<>(Lowbit.gemmConfigs());
        configs.add(Context.PORTABLE);
        for (String config : configs) {
            checkW4a8(gpu, new W4a8(seed++, 257, 264, 1024, true, true), new DType[] {DType.F16}, config);
            checkW4a8(gpu, new W4a8(seed++, 64, 520, 1040, false, false), new DType[] {DType.BF16}, config);
            checkW4a8(gpu, new W4a8(seed++, 1031, 1000, 4096, true, false), new DType[] {DType.F16}, config);
        }
    }

    @Test
    void dgqMatchesTheCpuBackend() throws Exception {
        // (N, K, G): G = 32, 64, 128 on the rules; 16 and 80 are no multiple of 32 (the expansion
        // looks scales up per weight); then shapes off the rules (N % 8, K % 16).
        int[][] cases = {
            {264, 1024, 32}, {264, 1024, 64}, {264, 1024, 128}, {1000, 4096, 128}, {1000, 4096, 64},
            {520, 1040, 16}, {520, 1040, 80}, {1001, 1024, 32}, {264, 1000, 40}
        };
        long seed = 300;
        for (int m : MS) {
            for (int[] c : cases) {
                checkDgq(gpu, new Dgq(seed, m, c[0], c[1], c[2], seed % 2 == 0, seed % 3 != 1, seed % 4 != 0), OUTS);
                seed++;
            }
        }
    }

    // ---- raw C ABI: strides, and DGQ weights that wrap ------------------------------------------

    /** A context through the C ABI, for requests the Java API does not make. */

    private static int code(DType t) {
        return t == DType.F32 ? LowbitNative.LOWBIT_F32 : t == DType.F16 ? LowbitNative.LOWBIT_F16 : LowbitNative.LOWBIT_BF16;
    }

    private static int bytesOf(DType t) {
        return t == DType.F32 ? 4 : 2;
    }

    /** Poison of an output row-major m x ldo: 0xFF bytes (an F32 / F16 / BF16 NaN the kernels never write). */
    private static byte[] poison(int m, int ldo, DType out) {
        byte[] p = new byte[m * ldo * bytesOf(out)];
        Arrays.fill(p, (byte) 0xFF);
        return p;
    }

    /** Compares CUDA and CPU outputs (m x ldo, n columns used); the padding columns must stay poisoned. */
    private static void assertSameOutputs(String what, byte[] gpuOut, byte[] cpuOut, int m, int n, int ldo, DType out) {
        int eb = bytesOf(out);
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
                                + Integer.toHexString(gpuOut[at] & 0xff) + " vs 0x"
                                + Integer.toHexString(cpuOut[at] & 0xff) + ")");
                    }
                }
            }
        }
    }

    /** Packs the K-column rows of `packed` (dense, K even) at a row stride of ld nibbles. */
    private static byte[] restride(byte[] packed, int n, int k, int ld) {
        byte[] out = new byte[n * ld / 2];
        for (int j = 0; j < n; j++) {
            System.arraycopy(packed, j * k / 2, out, j * ld / 2, k / 2);
        }
        return out;
    }

    /**
     * S4 weights at ldb = K + 2 (rows not 16-byte aligned: the expansion's byte loads) and K + 64,
     * DGQ codes at ldw = K + 2, activations at lda = K + 16, outputs at ldo = N + 8 (the tuned path)
     * and N + 3 (the portable one); the output padding stays poisoned.
     */
    @Test
    void rawStridesMatchTheCpuBackend() {
        int n = 264;
        int k = 1024;
        long seed = 700;
        for (int m : new int[] {17, 257}) {
            for (int ldoPad : new int[] {8, 3}) {
                for (int ldPad : new int[] {2, 64}) {
                    Random rnd = new Random(seed++);
                    int lda = k + 16;
                    int ld = k + ldPad;
                    int ldo = n + ldoPad;
                    byte[] a = randomBytes(rnd, (m - 1) * lda + k, -128, 127);
                    byte[] dense = new byte[n * k / 2];
                    rnd.nextBytes(dense);
                    Dgq d = new Dgq(seed, m, n, k, 64, ldPad == 2, true, false);
                    float[] as = scales(rnd, m, 1e-4);
                    float[] bs = scales(rnd, n, 1.0);
                    float[] bias = gaussian(rnd, n);
                    for (DType out : new DType[] {DType.F16, DType.BF16}) {
                        byte[][][] got = new byte[2][2][];
                        int[] backends = {LowbitNative.LOWBIT_BACKEND_CUDA, LowbitNative.LOWBIT_BACKEND_CPU};
                        for (int c = 0; c < 2; c++) {
                            try (RawContext r = new RawContext(backends[c])) {
                                lowbit_buffer ab = r.bytes(a);
                                lowbit_buffer asb = r.floats(as);
                                lowbit_buffer bsb = r.floats(bs);
                                lowbit_buffer biasb = r.floats(bias);
                                lowbit_buffer o4 = r.bytes(poison(m, ldo, out));
                                assertEquals(0, LowbitNative.lowbit_gemm_dequant(r.ctx, LowbitNative.LOWBIT_S8, ab, lda,
                                        LowbitNative.LOWBIT_S4, r.bytes(restride(dense, n, k, ld)), ld, m, n, k, asb, m,
                                        bsb, n, biasb, code(out), o4, ldo), RawContext.error());
                                got[c][0] = r.read(o4, m * ldo * bytesOf(out));
                                lowbit_buffer od = r.bytes(poison(m, ldo, out));
                                assertEquals(0, LowbitNative.lowbit_gemm_dgq(r.ctx, ab, lda,
                                        r.bytes(restride(d.codes, n, k, ld)), ld, r.bytes(d.s2), r.bytes(d.z), d.group,
                                        m, n, k, asb, m, r.floats(d.cs), biasb, code(out), od, ldo), RawContext.error());
                                got[c][1] = r.read(od, m * ldo * bytesOf(out));
                            }
                        }
                        String what = m + "x" + n + "x" + k + " lda " + lda + " ld " + ld + " ldo " + ldo + " -> " + out;
                        assertSameOutputs("W4A8 " + what, got[0][0], got[1][0], m, n, ldo, out);
                        assertSameOutputs("DGQ " + what, got[0][1], got[1][1], m, n, ldo, out);
                    }
                }
            }
        }
    }

    /**
     * DGQ weights that fail lowbit_dgq_check -- any code, S2 up to 255, any zero point -- so most
     * (q - z) * S2 leave the INT8 range: every backend uses the low 8 bits, read as two's
     * complement, and CUDA (expansion or portable kernel) must equal the CPU backend (M &gt; 4:
     * the CPU expands too).
     */
    @Test
    void wrappingDgqWeightsMatchTheCpuBackend() {
        int[][] cases = {{264, 1024, 32}, {264, 1024, 128}, {520, 1040, 80}, {1001, 1024, 64}};
        long seed = 800;
        for (int m : new int[] {17, 257}) {
            for (int[] cs : cases) {
                for (boolean zeroPoints : new boolean[] {false, true}) {
                    int n = cs[0];
                    int k = cs[1];
                    int group = cs[2];
                    Random rnd = new Random(seed++);
                    byte[] a = randomBytes(rnd, m * k, -128, 127);
                    byte[] codes = new byte[n * k / 2];
                    rnd.nextBytes(codes);
                    byte[] s2 = randomBytes(rnd, n * (k / group), 1, 255);
                    byte[] z = zeroPoints ? randomBytes(rnd, n * (k / group), -128, 127) : null;
                    float[] channel = scales(rnd, n, 0.01);
                    float[] as = scales(rnd, m, 1.0 / (127.0 * 127 * Math.sqrt(k)));
                    for (DType out : OUTS) {
                        byte[][] got = new byte[2][];
                        int[] backends = {LowbitNative.LOWBIT_BACKEND_CUDA, LowbitNative.LOWBIT_BACKEND_CPU};
                        for (int c = 0; c < 2; c++) {
                            try (RawContext r = new RawContext(backends[c])) {
                                lowbit_buffer o = r.bytes(poison(m, n, out));
                                assertEquals(0, LowbitNative.lowbit_gemm_dgq(r.ctx, r.bytes(a), k, r.bytes(codes), k,
                                        r.bytes(s2), r.bytes(z), group, m, n, k, r.floats(as), m, r.floats(channel), null,
                                        code(out), o, n), RawContext.error());
                                got[c] = r.read(o, m * n * bytesOf(out));
                            }
                        }
                        assertSameOutputs("wrapping DGQ G=" + group + (zeroPoints ? " zero points " : " signed ") + m
                                + "x" + n + "x" + k + " -> " + out, got[0], got[1], m, n, n, out);
                    }
                }
            }
        }
    }

    // ---- the expansion workspace ----------------------------------------------------------------

    /**
     * A fresh context: W4A8 and DGQ requests share one INT8 copy, which grows with N x K (264 x
     * 1024, 1000 x 4096, 2048 x 8192), then serves smaller requests without shrinking; every result
     * is the CPU backend's.
     */
    @Test
    void theWorkspaceGrowsThenServesSmallerRequests() throws Exception {
        DType[] outs = {DType.F16, DType.BF16};
        try (Context ctx = Context.open(Backend.CUDA)) {
            checkW4a8(ctx, new W4a8(900, 64, 264, 1024, true, true), outs, null);
            checkDgq(ctx, new Dgq(901, 64, 1000, 4096, 128, true, false, true), outs);
            checkW4a8(ctx, new W4a8(902, 257, 2048, 8192, false, false), outs, null);
            checkDgq(ctx, new Dgq(903, 17, 264, 1024, 32, false, true, false), outs);
            checkW4a8(ctx, new W4a8(904, 1031, 520, 1040, true, true), outs, null);
            checkDgq(ctx, new Dgq(905, 257, 520, 1040, 16, true, true, true), outs);
        }
    }

    /**
     * Two threads share one fresh context, each looping over its own request (W4A8 264 x 1024 and
     * DGQ 1000 x 4096, so the copy grows while the other thread uses it): an expansion and the GEMM
     * reading it must never be separated by the other thread's expansion.
     */
    @Test
    void twoThreadsShareTheWorkspace() throws Exception {
        W4a8 w4 = new W4a8(950, 257, 264, 1024, true, true);
        Dgq dq = new Dgq(951, 64, 1000, 4096, 64, true, true, false);
        short[] want4;
        short[] wantD;
        try (Owned o = new Owned()) {
            want4 = w4.run(cpu, o, DType.F16, null).toShortArray();
            wantD = dq.run(cpu, o, DType.F16).toShortArray();
        }
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (Context ctx = Context.open(Backend.CUDA);
                Owned o = new Owned()) {
            // Operands uploaded once; each thread then only launches and reads back.
            QuantizedTensor qa4 = new QuantizedTensor(o.add(ctx.upload(w4.a, DType.S8, w4.m, w4.k)),
                    o.add(ctx.upload(w4.as, 1, w4.as.length)), Granularity.PER_ROW, 0);
            QuantizedTensor qw4 = new QuantizedTensor(o.add(ctx.upload(w4.w, DType.S4, w4.n, w4.k)),
                    o.add(ctx.upload(w4.bs, 1, w4.n)), Granularity.PER_ROW, 0);
            Tensor bias4 = o.add(ctx.upload(w4.bias, 1, w4.n));
            Tensor y4 = o.add(ctx.allocate(DType.F16, w4.m, w4.n));
            DgqWeights dw = o.add(ctx.uploadDgq(dq.codes, dq.s2, dq.z, dq.cs, dq.n, dq.k, dq.group));
            QuantizedTensor qaD = new QuantizedTensor(o.add(ctx.upload(dq.a, DType.S8, dq.m, dq.k)),
                    o.add(ctx.upload(dq.as, 1, dq.as.length)), Granularity.PER_ROW, 0);
            Tensor yD = o.add(ctx.allocate(DType.F16, dq.m, dq.n));
            Future<?> t4 = pool.submit(() -> {
                for (int i = 0; i < 40; i++) {
                    KernelChecks.poison(y4);
                    ctx.gemmInto(qa4, qw4, bias4, y4);
                    assertSameBits("thread W4A8, round " + i, y4.toShortArray(), want4, w4.n);
                }
            });
            Future<?> tD = pool.submit(() -> {
                for (int i = 0; i < 40; i++) {
                    KernelChecks.poison(yD);
                    ctx.gemmDgqInto(qaD, dw, null, yD);
                    assertSameBits("thread DGQ, round " + i, yD.toShortArray(), wantD, dq.n);
                }
            });
            t4.get();
            tD.get();
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * An INT8 copy larger than the device: S4 weights of 56 GiB (allocated, never written: the
     * request fails before any kernel reads them) need a 112 GiB copy, more than an H100 or H200
     * has left. The call fails with OUT_OF_MEMORY naming the copy and its size; the context then
     * still runs expanded requests.
     */
    @Test
    void aCopyTooLargeIsOutOfMemoryAndTheContextKeepsWorking() throws Exception {
        requireTunedKernels();
        int m = 17;
        int k = 131072;
        int n = 56 << 14;  // n * k / 2 bytes = 56 GiB
        try (Context ctx = Context.open(Backend.CUDA)) {
            Tensor w;
            try {
                w = ctx.allocate(DType.S4, n, k);
            } catch (NativeOutOfMemoryException e) {
                Assumptions.abort("the GPU cannot hold the 56 GiB of S4 weights this test needs: " + e.getMessage());
                return;
            }
            try (Tensor wv = w;
                    Tensor av = ctx.upload(new byte[m * k], DType.S8, m, k);
                    Tensor s = ctx.upload(new float[] {1f}, 1, 1);
                    Tensor y = ctx.allocate(DType.F16, m, n)) {
                QuantizedTensor qa = new QuantizedTensor(av, s, Granularity.PER_TENSOR, 0);
                QuantizedTensor qw = new QuantizedTensor(wv, s, Granularity.PER_TENSOR, 0);
                assertNotEquals(Context.PORTABLE, ctx.gemmConfigFor(qa, qw, DType.F16));
                // Auto runs such weights on the fused kernel (no copy); a tuned configuration forced
                // on them runs the expansion path, whose copy cannot be had.
                String expand = Lowbit.gemmConfigs().get(0);
                NativeOutOfMemoryException e = assertThrows(NativeOutOfMemoryException.class,
                        () -> ctx.gemmInto(qa, qw, null, y, expand));
                assertEquals(LowbitException.Status.OUT_OF_MEMORY, e.status());
                assertTrue(e.getMessage().contains("INT8 copy of the 4-bit weights"), e.getMessage());
                assertTrue(e.getMessage().contains(Long.toString((long) n * k)), e.getMessage());
                ctx.synchronize();
            }
            checkW4a8(ctx, new W4a8(990, 64, 1000, 4096, true, true), new DType[] {DType.F16}, null);
            checkDgq(ctx, new Dgq(991, 257, 264, 1024, 128, false, false, true), new DType[] {DType.BF16});
        }
    }
}
