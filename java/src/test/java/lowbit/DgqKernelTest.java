package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code lowbit_gemm_dgq} on the CPU backend, every ISA level, bit for bit against a Java integer
 * reference: {@code acc = Σ a·W8} exactly (W8 = q·S2 or (q − z)·S2) and {@code lowbit.h}'s epilogue;
 * outputs are poisoned first; raw strides (ld > cols) through the C ABI; bad input.
 */
class DgqKernelTest {
    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        int[][] shapes = {{1, 7, 128, 32}, {1, 33, 256, 64}, {5, 13, 192, 64}, {17, 9, 256, 128}, {8, 31, 384, 128},
                {3, 5, 96, 32},
                // small M (the AVX-512 VNNI decode path): tails, groups not dividing 128, many groups per chunk, multi-task N, large K
                {2, 40, 640, 128}, {4, 19, 216, 24}, {4, 70, 1024, 8}, {1, 300, 4096, 64}, {2, 3, 16384, 128}};
        for (CpuIsa isa : CpuKernelTest.isas().toList()) {
            for (int[] s : shapes) {
                for (boolean asym : new boolean[] {false, true}) out.add(Arguments.of(isa, s[0], s[1], s[2], s[3], asym));
            }
        }
        return out.stream();
    }

    /** Random DGQ weights within |W8| <= 127, S2 up to 127 (codes then restricted, as the search does). */
    static final class Weights {
        final int n, k, group;
        final int[] q, s2, z;  // z null: signed codes
        final float[] cs;

        Weights(Random rnd, int n, int k, int group, boolean asym) {
            this(rnd, n, k, group, asym, false);
        }

        /**
         * With {@code small}: group scales no INT8 weight of any code can wrap ((u - z)·S2 in [-128,
         * 127] for every u in 0..15): S2 in 1..16 for signed codes, S2 in 1..8 and z in 0..15 with
         * zero points, codes over their whole range -- the groups real DGQ weights mostly have.
         */
        Weights(Random rnd, int n, int k, int group, boolean asym, boolean small) {
            this.n = n;
            this.k = k;
            this.group = group;
            int groups = n * (k / group);
            q = new int[n * k];
            s2 = new int[groups];
            z = asym ? new int[groups] : null;
            cs = new float[n];
            for (int j = 0; j < n; j++) cs[j] = (float) (0.001 + rnd.nextDouble() * 0.01);
            for (int gi = 0; gi < groups; gi++) {
                int lo, hi;
                do {
                    s2[gi] = small ? 1 + rnd.nextInt(asym ? 8 : 16)
                            : rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(127) : 1 + rnd.nextInt(15);
                    int lim = 127 / s2[gi];
                    int zz = asym ? (small ? rnd.nextInt(16) : rnd.nextInt(40) - 12) : 0;
                    if (asym) z[gi] = zz;
                    lo = Math.max(asym ? 0 : -8, zz - lim);
                    hi = Math.min(asym ? 15 : 7, zz + lim);
                } while (lo > hi);
                int j = gi / (k / group), g = gi % (k / group);
                for (int c = g * group; c < (g + 1) * group; c++) q[j * k + c] = lo + rnd.nextInt(hi - lo + 1);
            }
        }

        int w8(int j, int c) {
            int gi = j * (k / group) + c / group;
            return (q[j * k + c] - (z == null ? 0 : z[gi])) * s2[gi];
        }

        byte[] packed(int ld) {
            byte[] p = new byte[n * ld / 2];
            for (int j = 0; j < n; j++) {
                for (int c = 0; c < k; c++) {
                    int nib = q[j * k + c] & 0xF;
                    p[(j * ld + c) / 2] |= (byte) ((c & 1) == 0 ? nib : nib << 4);
                }
            }
            return p;
        }

        byte[] s2Bytes() {
            byte[] b = new byte[s2.length];
            for (int i = 0; i < b.length; i++) b[i] = (byte) s2[i];
            return b;
        }

        byte[] zBytes() {
            if (z == null) return null;
            byte[] b = new byte[z.length];
            for (int i = 0; i < b.length; i++) b[i] = (byte) z[i];
            return b;
        }
    }

    static float[] reference(byte[] a, float[] as, Weights w, float[] bias, int m) {
        int n = w.n, k = w.k;
        float[] y = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                long acc = 0;
                for (int c = 0; c < k; c++) acc += a[i * k + c] * w.w8(j, c);
                y[i * n + j] = Reference.epilogue(acc, as[as.length == 1 ? 0 : i], w.cs[j], bias == null ? 0 : bias[j], bias != null);
            }
        }
        return y;
    }

    private static Context open(CpuIsa isa) {
        Context ctx = Context.open(Backend.CPU);
        ctx.setCpuIsa(isa);
        return ctx;
    }

    @ParameterizedTest(name = "{0} M={1} N={2} K={3} G={4} asym={5}")
    @MethodSource("cases")
    void matchesIntegerReference(CpuIsa isa, int m, int n, int k, int group, boolean asym) {
        try (Context ctx = open(isa)) {
            check(ctx, isa.toString(), m, n, k, group, asym);
        }
    }

    /** One case on any context (the CUDA tests call it too): bit-exact against {@link #reference}. */
    static void check(Context ctx, String label, int m, int n, int k, int group, boolean asym) {
        Random rnd = new Random(31L * m + 7L * n + k + group + (asym ? 1000 : 0));
        Weights w = new Weights(rnd, n, k, group, asym);
        byte[] a = new byte[m * k];
        for (int i = 0; i < a.length; i++) a[i] = (byte) (rnd.nextInt(255) - 127);
        if (m > 1) a[0] = -128;  // S8 activations may hold -128 too
        float[] perToken = new float[m];
        for (int i = 0; i < m; i++) perToken[i] = (float) (0.01 + rnd.nextDouble());
        float[] perTensor = {0.37f};
        float[] bias = new float[n];
        for (int j = 0; j < n; j++) bias[j] = (float) rnd.nextGaussian();
        try (DgqWeights dw = ctx.uploadDgq(w.packed(k + (k & 1)), w.s2Bytes(), w.zBytes(), w.cs, n, k, group);
             Tensor bt = ctx.upload(bias, 1, n)) {
            for (float[] as : new float[][] {perToken, perTensor}) {
                for (DType out : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    boolean withBias = out != DType.F16;
                    float[] want = reference(a, as, w, withBias ? bias : null, m);
                    try (Tensor at = ctx.upload(a, DType.S8, m, k);
                         Tensor s = ctx.upload(as, 1, as.length);
                         QuantizedTensor qa = new QuantizedTensor(at, s, as.length == 1 ? Granularity.PER_TENSOR : Granularity.PER_ROW, 0);
                         Tensor y = ctx.allocate(out, m, n)) {
                        KernelChecks.poison(y);
                        ctx.gemmDgqInto(qa, dw, withBias ? bt : null, y);
                        float[] got = KernelChecks.toFloats(y);
                        for (int i = 0; i < m * n; i++) {
                            float e = out == DType.F32 ? want[i] : out == DType.F16 ? Half.toFloat(Half.fromFloat(want[i]))
                                    : Half.bf16ToFloat(Half.bf16FromFloat(want[i]));
                            if (Float.floatToIntBits(got[i]) != Float.floatToIntBits(e)) {
                                fail(label + " " + m + "x" + n + "x" + k + " G=" + group + " asym=" + asym + " -> " + out
                                        + ": out[" + i / n + "][" + i % n + "] = " + got[i] + ", reference " + e);
                            }
                        }
                    }
                }
            }
        }
    }

    // ---- raw C ABI: strides, wrap semantics, buffer validation ---------------------------------


    /** Runs lowbit_gemm_dgq with lda = k + 13, ldw = k + 6, ldo = n + 3; checks the padding of out is untouched. */
    private static float[] rawGemm(RawContext r, Weights w, byte[] a, int m, float[] as) {
        int n = w.n, k = w.k, lda = k + 13, ldw = k + 6, ldo = n + 3;
        byte[] apad = new byte[(m - 1) * lda + k];
        for (int i = 0; i < m; i++) System.arraycopy(a, i * k, apad, i * lda, k);
        float[] poison = new float[m * ldo];
        java.util.Arrays.fill(poison, Float.NaN);
        lowbit_buffer out = r.floats(poison);
        int st = LowbitNative.lowbit_gemm_dgq(r.ctx, r.bytes(apad), lda, r.bytes(w.packed(ldw)), ldw, r.bytes(w.s2Bytes()),
                w.z == null ? null : r.bytes(w.zBytes()), w.group, m, n, k, r.floats(as), as.length, r.floats(w.cs), null,
                0, out, ldo);
        assertEquals(0, st, RawContext.error());
        float[] got = r.readFloats(out, m * ldo);
        float[] y = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < ldo; j++) {
                if (j < n) y[i * n + j] = got[i * ldo + j];
                else assertTrue(Float.isNaN(got[i * ldo + j]), "padding of out row " + i + " was written");
            }
        }
        return y;
    }

    @Test
    void stridesLargerThanRowsAllIsas() {
        Random rnd = new Random(5);
        int m = 7, n = 11, k = 192;
        for (boolean asym : new boolean[] {false, true}) {
            Weights w = new Weights(rnd, n, k, 64, asym);
            byte[] a = new byte[m * k];
            rnd.nextBytes(a);
            float[] as = new float[m];
            for (int i = 0; i < m; i++) as[i] = 0.5f + i;
            float[] want = reference(a, as, w, null, m);
            for (CpuIsa isa : CpuKernelTest.isas().toList()) {
                try (RawContext r = RawContext.cpu(isa.code)) {
                    float[] got = rawGemm(r, w, a, m, as);
                    for (int i = 0; i < want.length; i++) {
                        assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), isa + " asym=" + asym + " element " + i);
                    }
                }
            }
        }
    }

    @Test
    void uncheckedOutOfRangeWeightsWrapIdenticallyOnEveryIsaAboveTheDecodeRows() {
        // lowbit.h: for weights that fail lowbit_dgq_check, the expansion kernels (M > 4, or any M below
        // AVX-512 VNNI) use the low 8 bits of (q - z) * S2 on every ISA; the small-M AVX-512 kernel may differ.
        Random rnd = new Random(9);
        int m = 5, n = 5, k = 64;
        Weights w = new Weights(rnd, n, k, 32, true);
        for (int i = 0; i < w.s2.length; i++) {
            w.s2[i] = 200 + i;
            w.z[i] = -100 + 7 * i;
        }
        byte[] a = new byte[m * k];
        rnd.nextBytes(a);
        float[] as = {1f};
        float[] want = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                long acc = 0;
                for (int c = 0; c < k; c++) acc += a[i * k + c] * (int) (byte) w.w8(j, c);
                want[i * n + j] = Reference.epilogue(acc, 1f, w.cs[j], 0, false);
            }
        }
        for (CpuIsa isa : CpuKernelTest.isas().toList()) {
            try (RawContext r = RawContext.cpu(isa.code)) {
                float[] got = rawGemm(r, w, a, m, as);
                for (int i = 0; i < want.length; i++) {
                    assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), isa + " element " + i);
                }
            }
        }
    }

    @Test
    void nativeValidationNamesTheProblem() {
        Random rnd = new Random(2);
        Weights w = new Weights(rnd, 4, 64, 32, true);
        try (RawContext r = RawContext.cpu(0)) {
            lowbit_buffer a = r.bytes(new byte[2 * 64]), codes = r.bytes(w.packed(64)), s2 = r.bytes(w.s2Bytes());
            lowbit_buffer z = r.bytes(w.zBytes()), as = r.floats(new float[] {1f}), cs = r.floats(w.cs);
            lowbit_buffer out = r.floats(new float[2 * 4]);
            // group does not divide K
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 64, s2, z, 48, 2, 4, 64, as, 1, cs, null, 0, out, 4));
            assertTrue(RawContext.error().contains("group size 48 does not divide K=64"), RawContext.error());
            // group scales buffer too small
            lowbit_buffer small = r.bytes(new byte[7]);
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 64, small, z, 32, 2, 4, 64, as, 1, cs, null, 0, out, 4));
            assertTrue(RawContext.error().contains("buffer group_scales holds 7 bytes"), RawContext.error());
            assertEquals(1, LowbitNative.lowbit_dgq_check(r.ctx, codes, 64, s2, small, 32, 4, 64));
            assertTrue(RawContext.error().contains("zero_points"), RawContext.error());
            // codes buffer too small for N rows
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 64, s2, z, 32, 2, 5, 64, as, 1, cs, null, 0, out, 5));
            assertTrue(RawContext.error().contains("buffer w holds"), RawContext.error());
            // odd ldw, a_scale_count, output dtype, null buffers
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 65, s2, z, 32, 2, 4, 64, as, 1, cs, null, 0, out, 4));
            assertTrue(RawContext.error().contains("must be even"), RawContext.error());
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 64, s2, z, 32, 2, 4, 64, as, 3, cs, null, 0, out, 4));
            assertTrue(RawContext.error().contains("a_scale_count must be 1 or M=2"), RawContext.error());
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 64, s2, z, 32, 2, 4, 64, as, 1, cs, null, 5, out, 4));
            assertTrue(RawContext.error().contains("output dtype"), RawContext.error());
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 64, null, z, 32, 2, 4, 64, as, 1, cs, null, 0, out, 4));
            assertTrue(RawContext.error().contains("buffer group_scales is null"), RawContext.error());
            assertEquals(1, LowbitNative.lowbit_gemm_dgq(r.ctx, a, 64, codes, 64, s2, z, 32, 2, 4, 64, as, 1, r.floats(new float[3]), null, 0, out, 4));
            assertTrue(RawContext.error().contains("channel_scales"), RawContext.error());
            assertEquals(0, LowbitNative.lowbit_dgq_check(r.ctx, codes, 64, s2, z, 32, 4, 64), RawContext.error());
        }
    }

    @Test
    void uploadRejectsOutOfRangeWeightsNamingRowAndGroup() {
        Random rnd = new Random(3);
        try (Context ctx = Context.open(Backend.CPU)) {
            // signed: code -8 with S2 = 16 gives -128
            Weights w = new Weights(rnd, 3, 64, 32, false);
            w.s2[2 * 2 + 1] = 16;
            for (int c = 32; c < 64; c++) w.q[2 * 64 + c] = 1;
            w.q[2 * 64 + 40] = -8;
            LowbitException e = assertThrows(LowbitException.class,
                    () -> ctx.uploadDgq(w.packed(64), w.s2Bytes(), null, w.cs, 3, 64, 32));
            assertTrue(e.getMessage().contains("row 2, group 1, column 40") && e.getMessage().contains("W8 = -128"), e.getMessage());
            // unsigned: (15 - 0) * 9 = 135
            Weights u = new Weights(rnd, 2, 64, 32, true);
            u.z[1] = 0;
            u.s2[1] = 9;
            for (int c = 32; c < 64; c++) u.q[c] = 3;
            u.q[63] = 15;
            e = assertThrows(LowbitException.class, () -> ctx.uploadDgq(u.packed(64), u.s2Bytes(), u.zBytes(), u.cs, 2, 64, 32));
            assertTrue(e.getMessage().contains("row 0, group 1, column 63") && e.getMessage().contains("135"), e.getMessage());
            // a group scale of 0
            Weights v = new Weights(rnd, 2, 64, 32, false);
            v.s2[3] = 0;
            e = assertThrows(LowbitException.class, () -> ctx.uploadDgq(v.packed(64), v.s2Bytes(), null, v.cs, 2, 64, 32));
            assertTrue(e.getMessage().contains("row 1, group 1") && e.getMessage().contains("group scale is 0"), e.getMessage());
        }
    }

    @Test
    void javaApiRejectsBadShapes() {
        Random rnd = new Random(4);
        Weights w = new Weights(rnd, 3, 64, 32, false);
        try (Context ctx = Context.open(Backend.CPU)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ctx.uploadDgq(w.packed(64), w.s2Bytes(), null, w.cs, 3, 64, 48));
            assertTrue(e.getMessage().contains("group size 48 does not divide K=64"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.uploadDgq(w.packed(64), new byte[5], null, w.cs, 3, 64, 32));
            assertTrue(e.getMessage().contains("need 6 group scales"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.uploadDgq(new byte[10], w.s2Bytes(), null, w.cs, 3, 64, 32));
            assertTrue(e.getMessage().contains("expected 96 bytes"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.uploadDgq(w.packed(64), w.s2Bytes(), null, new float[2], 3, 64, 32));
            assertTrue(e.getMessage().contains("N=3 channel scales"), e.getMessage());
            try (DgqWeights dw = ctx.uploadDgq(w.packed(64), w.s2Bytes(), null, w.cs, 3, 64, 32);
                 Tensor x = ctx.upload(new float[2 * 63], 2, 63);
                 QuantizedTensor qa = ctx.quantize(x, 8, Granularity.PER_ROW)) {
                e = assertThrows(IllegalArgumentException.class, () -> ctx.gemmDgq(qa, dw, null, DType.F32));
                assertTrue(e.getMessage().contains("K mismatch"), e.getMessage());
            }
            DgqWeights closed = ctx.uploadDgq(w.packed(64), w.s2Bytes(), null, w.cs, 3, 64, 32);
            closed.close();
            closed.close();
            try (Tensor x = ctx.upload(new float[2 * 64], 2, 64); QuantizedTensor qa = ctx.quantize(x, 8, Granularity.PER_ROW)) {
                assertThrows(IllegalStateException.class, () -> ctx.gemmDgq(qa, closed, null, DType.F32));
            }
        }
    }
}
