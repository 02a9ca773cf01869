package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import org.bytedeco.javacpp.BytePointer;
import org.junit.jupiter.api.Test;

/**
 * The CUDA weight-streaming decode kernels (native/src/cuda/gemv_stream.cu, M &lt;= 16) against the
 * CPU backend, bit for bit: S8 weights (W8A8), packed S4 weights (W4A8 per channel) and DGQ codes
 * (signed, and unsigned with zero points; G = 32, 64, 128), per-token and per-tensor activation
 * scales, with and without bias, F32 / F16 / BF16 outputs; M = 1, 2, 3, 7, 16 and 17 (just above
 * the threshold: the tile kernels run), odd N, K an odd multiple of 32 (the kernels' alignment
 * rules); shapes that split K over many blocks (N small, K large), that split it over none, and
 * that walk several activation stages per block; shapes off the alignment rules (the tiled kernel
 * runs); raw strides through the C ABI. Outputs are poisoned first, so an element never written
 * shows. The integer part is also checked against exact long arithmetic (S32 outputs).
 */
class CudaDecodeGemmTest extends GpuTestBase {
    static final int[] MS = {1, 2, 3, 7, 16, 17};
    static final DType[] OUTS = {DType.F32, DType.F16, DType.BF16};

    /** N x K: tiny (no K split), odd N with K an odd multiple of 32, split-K (N small, K large). */
    static final int[][] SHAPES = {{13, 96}, {255, 1184}, {1001, 4064}, {24, 16384}};

    /** Owns the tensors of one problem on one context. */
    private static final class Owned implements AutoCloseable {
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

    private static byte[] randomBytes(Random rnd, int count, int lo, int hi) {
        byte[] v = new byte[count];
        for (int i = 0; i < count; i++) {
            v[i] = (byte) (lo + rnd.nextInt(hi - lo + 1));
        }
        return v;
    }

    private static float[] scales(Random rnd, int count, double magnitude) {
        float[] s = new float[count];
        for (int i = 0; i < count; i++) {
            s[i] = (float) (magnitude * (0.25 + rnd.nextDouble()));
        }
        return s;
    }

    /** Asserts the two outputs (same dtype and shape) are the same bits, naming the first difference. */
    private static void assertSameBits(String what, Tensor got, Tensor want, int n) {
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
            short[] g = got.toShortArray();
            short[] w = want.toShortArray();
            for (int i = 0; i < w.length; i++) {
                if (g[i] != w[i]) {
                    fail(what + ": out[" + i / n + "][" + i % n + "] = 0x" + Integer.toHexString(g[i] & 0xffff)
                            + ", CPU backend 0x" + Integer.toHexString(w[i] & 0xffff));
                }
            }
        }
    }

    /**
     * lowbit_gemm_dequant with INT8 activations and S8 or S4 weights, on the GPU and the CPU backend
     * from the same bytes and scales, every output type; bit equality.
     */
    static void checkLinear(long seed, int m, int n, int k, DType wType, boolean perToken, boolean withBias)
            throws Exception {
        Random rnd = new Random(seed);
        byte[] a = randomBytes(rnd, m * k, -128, 127);
        int wBytes = wType == DType.S8 ? n * k : n * (k / 2);
        byte[] w = wType == DType.S8 ? randomBytes(rnd, wBytes, -127, 127) : randomBytes(rnd, wBytes, -128, 127);
        double accScale = 127.0 * (wType == DType.S8 ? 127 : 7) * Math.sqrt(k) / 3;
        float[] as = scales(rnd, perToken ? m : 1, 1.0 / accScale);
        float[] bs = scales(rnd, n, 30.0);
        float[] bias = new float[n];
        for (int j = 0; j < n; j++) {
            bias[j] = (float) rnd.nextGaussian();
        }
        for (DType out : OUTS) {
            String what = "W" + (wType == DType.S8 ? 8 : 4) + "A8 " + m + "x" + n + "x" + k
                    + (perToken ? " per-token" : " per-tensor") + (withBias ? " +bias" : "") + " -> " + out;
            try (Owned o = new Owned()) {
                Tensor[] y = new Tensor[2];
                Context[] ctxs = {gpu, cpu};
                for (int c = 0; c < 2; c++) {
                    Context ctx = ctxs[c];
                    Tensor av = o.add(ctx.upload(a, DType.S8, m, k));
                    Tensor wv = o.add(ctx.upload(w, wType, n, k));
                    QuantizedTensor qa = new QuantizedTensor(av, o.add(ctx.upload(as, 1, as.length)),
                            perToken ? Granularity.PER_ROW : Granularity.PER_TENSOR, 0);
                    QuantizedTensor qw = new QuantizedTensor(wv, o.add(ctx.upload(bs, 1, n)), Granularity.PER_ROW, 0);
                    Tensor bt = withBias ? o.add(ctx.upload(bias, 1, n)) : null;
                    y[c] = o.add(ctx.allocate(out, m, n));
                    KernelChecks.poison(y[c]);
                    ctx.gemmInto(qa, qw, bt, y[c]);
                }
                assertSameBits(what, y[0], y[1], n);
            }
        }
    }

    /** DGQ weights as uploaded: packed codes (ld = K), group scales, zero points or null, channel scales. */
    private static final class Dgq {
        final byte[] codes;
        final byte[] s2;
        final byte[] z;
        final float[] cs;
        final int group;

        Dgq(byte[] codes, byte[] s2, byte[] z, float[] cs, int group) {
            this.codes = codes;
            this.s2 = s2;
            this.z = z;
            this.cs = cs;
            this.group = group;
        }

        /** DgqKernelTest's generator: S2 up to 127 with the codes restricted to |W8| <= 127. */
        static Dgq of(DgqKernelTest.Weights w) {
            return new Dgq(w.packed(w.k), w.s2Bytes(), w.zBytes(), w.cs, w.group);
        }

        /**
         * Large weights without a per-element int array: any nibble, S2 in 1..15 (signed codes,
         * |q·S2| <= 120) or 1..8 with z in 0..15 (|(u - z)·S2| <= 120).
         */
        static Dgq light(Random rnd, int n, int k, int group, boolean zeroPoints) {
            byte[] codes = new byte[n * (k / 2)];
            rnd.nextBytes(codes);
            int groups = n * (k / group);
            byte[] s2 = randomBytes(rnd, groups, 1, zeroPoints ? 8 : 15);
            byte[] z = zeroPoints ? randomBytes(rnd, groups, 0, 15) : null;
            return new Dgq(codes, s2, z, scales(rnd, n, 0.01), group);
        }
    }

    /** lowbit_gemm_dgq on the GPU and the CPU backend from the same codes and scales; bit equality. */
    static void checkDgq(long seed, int m, int n, int k, Dgq w, boolean perToken, boolean withBias) throws Exception {
        Random rnd = new Random(seed);
        byte[] a = randomBytes(rnd, m * k, -128, 127);
        float[] as = scales(rnd, perToken ? m : 1, 1.0 / (127.0 * 127 * Math.sqrt(k)));
        float[] bias = new float[n];
        for (int j = 0; j < n; j++) {
            bias[j] = (float) rnd.nextGaussian();
        }
        for (DType out : OUTS) {
            String what = "DGQ G=" + w.group + (w.z != null ? " zero points " : " signed ") + m + "x" + n + "x" + k
                    + (perToken ? " per-token" : " per-tensor") + (withBias ? " +bias" : "") + " -> " + out;
            try (Owned o = new Owned()) {
                Tensor[] y = new Tensor[2];
                Context[] ctxs = {gpu, cpu};
                for (int c = 0; c < 2; c++) {
                    Context ctx = ctxs[c];
                    DgqWeights dw = o.add(ctx.uploadDgq(w.codes, w.s2, w.z, w.cs, n, k, w.group));
                    QuantizedTensor qa = new QuantizedTensor(o.add(ctx.upload(a, DType.S8, m, k)),
                            o.add(ctx.upload(as, 1, as.length)), perToken ? Granularity.PER_ROW : Granularity.PER_TENSOR,
                            0);
                    Tensor bt = withBias ? o.add(ctx.upload(bias, 1, n)) : null;
                    y[c] = o.add(ctx.allocate(out, m, n));
                    KernelChecks.poison(y[c]);
                    ctx.gemmDgqInto(qa, dw, bt, y[c]);
                }
                assertSameBits(what, y[0], y[1], n);
            }
        }
    }

    static void checkDgq(long seed, int m, int n, int k, int group, boolean zeroPoints, boolean perToken,
            boolean withBias) throws Exception {
        Dgq w = Dgq.of(new DgqKernelTest.Weights(new Random(seed ^ 0x5eed), n, k, group, zeroPoints));
        checkDgq(seed, m, n, k, w, perToken, withBias);
    }

    @Test
    void w8a8MatchesTheCpuBackend() throws Exception {
        long seed = 100;
        for (int m : MS) {
            for (int[] s : SHAPES) {
                checkLinear(seed, m, s[0], s[1], DType.S8, seed % 2 == 0, seed % 3 != 0);
                seed++;
            }
        }
    }

    @Test
    void w4a8MatchesTheCpuBackend() throws Exception {
        long seed = 200;
        for (int m : MS) {
            for (int[] s : SHAPES) {
                checkLinear(seed, m, s[0], s[1], DType.S4, seed % 2 == 0, seed % 3 != 0);
                seed++;
            }
        }
    }

    @Test
    void dgqMatchesTheCpuBackend() throws Exception {
        long seed = 300;
        for (int m : MS) {
            for (int[] s : SHAPES) {
                for (int group : new int[] {32, 64, 128}) {
                    if (s[1] % group != 0) continue;  // G must divide K
                    checkDgq(seed, m, s[0], s[1], group, seed % 2 == 0, seed % 3 != 1, seed % 4 != 0);
                    seed++;
                }
            }
        }
    }

    /**
     * Group scales small enough that no weight of any code can wrap, in every group (what real DGQ
     * weights mostly have): with G = 128 the streaming kernel then takes its folded path (the MMAs on
     * the codes, the group scale applied per step) in every step, for signed codes and with zero
     * points, one K stage and several, with and without a K split.
     */
    @Test
    void dgqFoldedPathMatchesTheCpuBackend() throws Exception {
        long seed = 350;
        int[][] shapes = {{255, 1152}, {1001, 4096}, {24, 16384}};
        for (int m : new int[] {1, 7, 16}) {
            for (int[] s : shapes) {
                for (boolean zeroPoints : new boolean[] {false, true}) {
                    Dgq w = Dgq.of(new DgqKernelTest.Weights(new Random(seed ^ 0x5eed), s[0], s[1], 128, zeroPoints, true));
                    checkDgq(seed, m, s[0], s[1], w, seed % 2 == 0, seed % 3 != 1);
                    seed++;
                }
            }
        }
    }

    /**
     * Many channel tiles and a long K: with at most 132 SMs the blocks get K splits longer than one
     * activation stage (2048 values), so each walks several stages; N = 9731 leaves a partial last
     * channel tile.
     */
    @Test
    void longRowsWithManyTilesMatchTheCpuBackend() throws Exception {
        int n = 9731;
        int k = 16384;
        for (int m : new int[] {1, 16}) {
            checkLinear(400 + m, m, n, k, DType.S8, true, true);
            checkLinear(410 + m, m, n, k, DType.S4, false, true);
            checkDgq(420 + m, m, n, k, Dgq.light(new Random(m), n, k, 128, true), true, false);
            checkDgq(430 + m, m, n, k, Dgq.light(new Random(m + 1), n, k, 64, false), false, true);
        }
    }

    /** Shapes off the streaming kernels' rules run the tiled kernel, with the same bits. */
    @Test
    void shapesOffTheAlignmentRulesStillMatch() throws Exception {
        long seed = 500;
        for (int m : new int[] {1, 5, 16}) {
            checkLinear(seed++, m, 77, 1000, DType.S8, true, true);   // K % 16 != 0
            checkLinear(seed++, m, 77, 1040, DType.S4, true, false);  // K % 32 != 0
            checkDgq(seed++, m, 33, 960, 48, false, true, true);      // group % 32 != 0
            checkDgq(seed++, m, 33, 960, 16, true, false, false);     // group 16
        }
    }

    /** Unit scales through S32 outputs (lowbit_gemm_s32): exact against long arithmetic, -128 and -8 included. */
    @Test
    void integerProductIsExact() {
        long seed = 600;
        for (int m : MS) {
            for (int[] s : SHAPES) {
                KernelChecks.gemmS32(gpu, seed++, m, s[0], s[1], DType.S8, DType.S8);
                KernelChecks.gemmS32(gpu, seed++, m, s[0], s[1], DType.S8, DType.S4);
            }
        }
    }

    /** The dispatch reports the streaming kernel as the portable one for M <= 16. */
    @Test
    void decodeShapesReportThePortableKernel() {
        try (Tensor a = gpu.allocate(DType.S8, 16, 4096);
                Tensor b = gpu.allocate(DType.S8, 4096, 4096);
                Tensor s = gpu.allocate(DType.F32, 1, 1)) {
            QuantizedTensor qa = new QuantizedTensor(a, s, Granularity.PER_TENSOR, 0);
            QuantizedTensor qb = new QuantizedTensor(b, s, Granularity.PER_TENSOR, 0);
            assertEquals(Context.PORTABLE, gpu.gemmConfigFor(qa, qb, DType.F16));
        }
    }

    // ---- raw strides through the C ABI: lda, ldb, ldo past the row length ---------------------


    /**
     * S8 and S4 weights with lda = K + 13 (activation rows not 16-byte aligned), ldb = K + 32 and
     * ldo = N + 3; DGQ codes with ldw = K + 64: CUDA equals the CPU backend, and the padding of the
     * output rows stays poisoned.
     */
    @Test
    void rawStridesMatchTheCpuBackend() {
        Random rnd = new Random(700);
        int n = 45;
        int k = 352;
        for (int m : new int[] {1, 9, 16}) {
            int lda = k + 13;
            int ldb = k + 32;
            int ldo = n + 3;
            byte[] a = randomBytes(rnd, (m - 1) * lda + k, -128, 127);
            byte[] w8 = randomBytes(rnd, (n - 1) * ldb + k, -127, 127);
            byte[] w4 = randomBytes(rnd, n * ldb / 2, -128, 127);
            DgqKernelTest.Weights dq = new DgqKernelTest.Weights(rnd, n, k, 32, true);
            int ldw = k + 64;
            float[] as = scales(rnd, m, 1e-4);
            float[] bs = scales(rnd, n, 1.0);
            float[] poison = new float[m * ldo];
            Arrays.fill(poison, Float.NaN);
            float[][][] got = new float[2][3][];
            int[] backends = {LowbitNative.LOWBIT_BACKEND_CUDA, LowbitNative.LOWBIT_BACKEND_CPU};
            for (int c = 0; c < 2; c++) {
                try (RawContext r = new RawContext(backends[c])) {
                    lowbit_buffer ab = r.bytes(a);
                    lowbit_buffer asb = r.floats(as);
                    lowbit_buffer bsb = r.floats(bs);
                    for (int f = 0; f < 3; f++) {
                        lowbit_buffer out = r.floats(poison);
                        int st;
                        if (f < 2) {
                            st = LowbitNative.lowbit_gemm_dequant(r.ctx, LowbitNative.LOWBIT_S8, ab, lda,
                                    f == 0 ? LowbitNative.LOWBIT_S8 : LowbitNative.LOWBIT_S4, r.bytes(f == 0 ? w8 : w4), ldb,
                                    m, n, k, asb, m, bsb, n, null, LowbitNative.LOWBIT_F32, out, ldo);
                        } else {
                            st = LowbitNative.lowbit_gemm_dgq(r.ctx, ab, lda, r.bytes(dq.packed(ldw)), ldw,
                                    r.bytes(dq.s2Bytes()), r.bytes(dq.zBytes()), 32, m, n, k, asb, m, r.floats(dq.cs),
                                    null, LowbitNative.LOWBIT_F32, out, ldo);
                        }
                        assertEquals(0, st, RawContext.error());
                        got[c][f] = r.readFloats(out, m * ldo);
                    }
                }
            }
            for (int f = 0; f < 3; f++) {
                for (int i = 0; i < m * ldo; i++) {
                    String what = new String[] {"S8", "S4", "DGQ"}[f] + " M=" + m + " element [" + i / ldo + "]["
                            + i % ldo + "]";
                    if (i % ldo >= n) {
                        assertTrue(Float.isNaN(got[0][f][i]), what + ": output padding was written");
                    } else {
                        assertEquals(Float.floatToRawIntBits(got[1][f][i]), Float.floatToRawIntBits(got[0][f][i]), what);
                    }
                }
            }
        }
    }

    /**
     * The streaming kernels start before the kernel in front of them has finished (programmatic
     * dependent launch) and may request their first weights early: only when the previous
     * operation did not touch the weight buffer (native/src/op_log.h). Here a GEMM's int32 output
     * is, byte for byte, the S8 weights of the next GEMM, launched right behind it with nothing in
     * between: every round must read the new bytes, never the round before's. Two long GEMMs are
     * queued first, so that both are enqueued well before the first of them runs (otherwise the
     * host's launch gap alone would keep them apart). Without the buffer check in op_log.h this
     * test fails on the H100.
     */
    @Test
    void weightsWrittenByThePreviousKernelAreReadAfterIt() {
        Random rnd = new Random(800);
        int m1 = 16;
        int k1 = 4096;
        int n1 = 2048;
        int n2 = 64;
        int k2 = m1 * n1 * 4 / n2;  // out1's bytes as an n2 x k2 S8 matrix
        byte[] w1 = randomBytes(rnd, n1 * k1, -127, 127);
        byte[] a2 = randomBytes(rnd, k2, -128, 127);
        try (RawContext r = new RawContext(LowbitNative.LOWBIT_BACKEND_CUDA)) {
            lowbit_buffer w1b = r.bytes(w1);
            lowbit_buffer a2b = r.bytes(a2);
            lowbit_buffer out1 = r.bytes(new byte[m1 * n1 * 4]);
            lowbit_buffer a1b = r.bytes(new byte[m1 * k1]);
            int kb = 8192;
            lowbit_buffer busyA = r.bytes(randomBytes(rnd, m1 * kb, -128, 127));
            lowbit_buffer busyW = r.bytes(randomBytes(rnd, kb * kb, -127, 127));
            lowbit_buffer busyOut = r.bytes(new byte[m1 * kb * 4]);
            for (int round = 0; round < 6; round++) {
                byte[] a1 = randomBytes(rnd, m1 * k1, -128, 127);
                try (BytePointer p = new BytePointer(a1)) {
                    assertEquals(0, LowbitNative.lowbit_buffer_write(a1b, 0, p, a1.length), RawContext.error());
                }
                lowbit_buffer out2 = r.bytes(new byte[n2 * 4]);
                for (int busy = 0; busy < 2; busy++) {
                    assertEquals(0, LowbitNative.lowbit_gemm_s32(r.ctx, LowbitNative.LOWBIT_S8, busyA, kb,
                            LowbitNative.LOWBIT_S8, busyW, kb, m1, kb, kb, busyOut, kb), RawContext.error());
                }
                assertEquals(0, LowbitNative.lowbit_gemm_s32(r.ctx, LowbitNative.LOWBIT_S8, a1b, k1, LowbitNative.LOWBIT_S8,
                        w1b, k1, m1, n1, k1, out1, n1), RawContext.error());
                assertEquals(0, LowbitNative.lowbit_gemm_s32(r.ctx, LowbitNative.LOWBIT_S8, a2b, k2, LowbitNative.LOWBIT_S8,
                        out1, k2, 1, n2, k2, out2, n2), RawContext.error());
                byte[] w2 = new byte[m1 * n1 * 4];
                for (int i = 0; i < m1; i++) {
                    for (int j = 0; j < n1; j++) {
                        long acc = 0;
                        for (int c = 0; c < k1; c++) {
                            acc += a1[i * k1 + c] * w1[j * k1 + c];
                        }
                        int v = (int) acc;
                        int at = 4 * (i * n1 + j);
                        for (int b = 0; b < 4; b++) {
                            w2[at + b] = (byte) (v >>> (8 * b));
                        }
                    }
                }
                byte[] got = r.read(out2, n2 * 4);
                for (int j = 0; j < n2; j++) {
                    long want = 0;
                    for (int c = 0; c < k2; c++) {
                        want += a2[c] * w2[j * k2 + c];
                    }
                    int g = (got[4 * j] & 0xFF) | (got[4 * j + 1] & 0xFF) << 8 | (got[4 * j + 2] & 0xFF) << 16
                            | (got[4 * j + 3] & 0xFF) << 24;
                    assertEquals((int) want, g, "round " + round + ", output " + j
                            + ": the second GEMM read weights its predecessor had not finished writing");
                }
            }
        }
    }
}
