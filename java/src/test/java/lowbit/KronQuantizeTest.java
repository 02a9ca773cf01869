package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_context;
import lowbit.calibrate.KroneckerTransform;
import org.junit.jupiter.api.Test;

/**
 * {@code lowbit_kron_quantize} on the CPU backend: codes and scales equal, bit for bit, a plain Java
 * simulation of the arithmetic {@code lowbit.h} fixes (fixed-order float32 FMA chains, then the
 * clipped per-row quantization), on every ISA level and thread count, for the factor pairs of
 * FlatQuant's rule; the transform is {@code x·(P1 ⊗ P2)} (checked against the dense Kronecker
 * product in FP64); non-finite inputs and bad arguments are clear exceptions.
 */
class KronQuantizeTest {
    /** Row widths of the issue (FlatQuant's rule gives the factors) and odd ones. */
    static final int[] RULE_SIZES = {15, 576, 1536, 4096, 11008, 14336};
    /** Extra factor pairs: degenerate, n1 > n2, odd, the largest. */
    static final int[][] EXTRA_PAIRS = {{1, 1}, {1, 7}, {7, 1}, {5, 3}, {9, 13}, {128, 128}};

    /** Every factor pair the tests run: the rule's for RULE_SIZES, then EXTRA_PAIRS. */
    static List<int[]> factorPairs() {
        List<int[]> pairs = new ArrayList<>();
        for (int n : RULE_SIZES) {
            pairs.add(KroneckerTransform.decompose(n));
        }
        for (int[] p : EXTRA_PAIRS) {
            pairs.add(p);
        }
        return pairs;
    }

    /** Codes (rows × n, row-major) and per-row scales. */
    static final class Expected {
        final int[] codes;
        final float[] scales;

        Expected(int[] codes, float[] scales) {
            this.codes = codes;
            this.scales = scales;
        }
    }

    /**
     * The simulation: for each row, U[i][l] = fma-chain over k of P1[k][i]·X[k][l], then Y[i][j] =
     * fma-chain over l of U[i][l]·P2[l][j] (each chain from 0, index ascending, Math.fma rounding
     * once), amax = max(|clipMax·max y|, |clipMin·min y|), scale = amax/qmax (1 if 0), code =
     * clamp(rint(y/scale)) -- all in float32. {@code x} holds values already rounded to the input
     * dtype and must be finite (as must y).
     */
    static Expected simulate(float[] x, int rows, int n1, int n2, float[] p1, float[] p2, float clipMax,
            float clipMin, int bits) {
        int n = n1 * n2;
        float qmax = bits == 8 ? 127f : 7f;
        int[] codes = new int[rows * n];
        float[] scales = new float[rows];
        float[] u = new float[n];
        float[] y = new float[n];
        for (int r = 0; r < rows; r++) {
            int o = r * n;
            for (int i = 0; i < n1; i++) {
                for (int l = 0; l < n2; l++) {
                    float acc = 0f;
                    for (int k = 0; k < n1; k++) {
                        acc = Math.fma(p1[k * n1 + i], x[o + k * n2 + l], acc);
                    }
                    u[i * n2 + l] = acc;
                }
            }
            for (int i = 0; i < n1; i++) {
                for (int j = 0; j < n2; j++) {
                    float acc = 0f;
                    for (int l = 0; l < n2; l++) {
                        acc = Math.fma(u[i * n2 + l], p2[l * n2 + j], acc);
                    }
                    y[i * n2 + j] = acc;
                }
            }
            float hi = y[0];
            float lo = y[0];
            for (int c = 1; c < n; c++) {
                hi = Math.max(hi, y[c]);
                lo = Math.min(lo, y[c]);
            }
            float amax = Math.max(Math.abs(clipMax * hi), Math.abs(clipMin * lo));
            float scale = amax / qmax;
            scale = scale == 0f ? 1f : scale;
            scales[r] = scale;
            for (int c = 0; c < n; c++) {
                float v = y[c] / scale;
                double q = Math.rint(Math.max(-qmax, Math.min(qmax, v)));
                codes[o + c] = (int) q;
            }
        }
        return new Expected(codes, scales);
    }

    /** A factor near FlatQuant's: orthogonal-scale Gaussian entries plus the identity. */
    static float[] factor(Random rnd, int d) {
        float[] p = new float[d * d];
        double s = 1.0 / Math.sqrt(d);
        for (int i = 0; i < d * d; i++) {
            p[i] = (float) (rnd.nextGaussian() * s + (i % (d + 1) == 0 ? 0.5 : 0));
        }
        return p;
    }

    /** Reads the codes of a quantized tensor (rows × cols) as ints. */
    static int[] codes(QuantizedTensor q, int rows, int cols) {
        byte[] b = q.values().toByteArray();
        return q.bits() == 8 ? KernelChecks.fromS8(b) : Reference.unpackS4(b, rows, cols);
    }

    /**
     * Runs kron_quantize on {@code ctx} with poisoned outputs and checks codes and scales against the
     * simulation bit for bit, and (S4, odd n) that the padding nibbles are 0.
     */
    static void check(Context ctx, long seed, int rows, int n1, int n2, int bits, DType in, float clipMax,
            float clipMin) {
        Random rnd = new Random(seed);
        int n = n1 * n2;
        float[] x = KernelChecks.roundTo(in, KernelChecks.activations(rnd, rows, n));
        float[] p1 = factor(rnd, n1);
        float[] p2 = factor(rnd, n2);
        String what = in + " " + rows + " rows, " + n1 + "x" + n2 + ", " + bits + "-bit, clip " + clipMax + "/" + clipMin
                + " on " + ctx;
        Expected want = simulate(x, rows, n1, n2, p1, p2, clipMax, clipMin, bits);
        try (Tensor xt = KernelChecks.upload(ctx, in, x, rows, n);
                Tensor p1t = ctx.upload(p1, n1, n1);
                Tensor p2t = ctx.upload(p2, n2, n2);
                QuantizedTensor q = ctx.allocateQuantized(rows, n, bits, Granularity.PER_ROW, 0)) {
            KernelChecks.poison(q.values());
            KernelChecks.poison(q.scales());
            ctx.kronQuantizeInto(xt, p1t, p2t, clipMax, clipMin, q);
            assertArrayEquals(want.scales, q.scales().toFloatArray(), "scales of " + what);
            assertArrayEquals(want.codes, codes(q, rows, n), "codes of " + what);
            if (bits == 4 && (n & 1) == 1) {
                byte[] packed = q.values().toByteArray();
                for (int r = 0; r < rows; r++) {
                    assertEquals(0, (packed[(r * (n + 1) + n) / 2] >> 4) & 0xF, "padding nibble of row " + r + " of " + what);
                }
            }
        }
    }

    /**
     * On the CPU backend {@link KronPrecision#TF32} and {@link KronPrecision#HALF} compute the exact
     * products: the same bits as {@link KronPrecision#EXACT}, which match the simulation (F16 input,
     * odd factor pair, both widths).
     */
    @Test
    void tensorCorePrecisionsOnTheCpuAreTheExactArithmetic() {
        Random rnd = new Random(77);
        int rows = 9, n1 = 24, n2 = 20, n = n1 * n2;
        float[] x = KernelChecks.roundTo(DType.F16, KernelChecks.activations(rnd, rows, n));
        float[] p1 = factor(rnd, n1);
        float[] p2 = factor(rnd, n2);
        try (Context ctx = Context.open(Backend.CPU);
                Tensor xt = KernelChecks.upload(ctx, DType.F16, x, rows, n);
                Tensor p1t = ctx.upload(p1, n1, n1);
                Tensor p2t = ctx.upload(p2, n2, n2)) {
            for (int bits : new int[] {4, 8}) {
                Expected want = simulate(x, rows, n1, n2, p1, p2, 0.9f, 0.8f, bits);
                for (KronPrecision precision : KronPrecision.values()) {
                    try (QuantizedTensor q = ctx.allocateQuantized(rows, n, bits, Granularity.PER_ROW, 0)) {
                        KernelChecks.poison(q.values());
                        KernelChecks.poison(q.scales());
                        ctx.kronQuantizeInto(xt, p1t, p2t, 0.9f, 0.8f, q, precision);
                        assertArrayEquals(want.scales, q.scales().toFloatArray(), precision + " scales, " + bits + "-bit");
                        assertArrayEquals(want.codes, codes(q, rows, n), precision + " codes, " + bits + "-bit");
                    }
                }
            }
        }
    }

    @Test
    void matchesSimulationBitForBitOnEveryIsaAndThreadCount() {
        long seed = 1;
        DType[] types = {DType.F32, DType.F16, DType.BF16};
        CpuIsa best = Lowbit.cpuIsaBest();
        for (CpuIsa isa : new CpuIsa[] {CpuIsa.SCALAR, best}) {
            for (int threads : new int[] {1, 0}) {
                try (Context ctx = Context.open(Backend.CPU)) {
                    ctx.setCpuIsa(isa);
                    ctx.setThreads(threads);
                    int t = 0;
                    for (int[] f : factorPairs()) {
                        int n = f[0] * f[1];
                        int rows = n >= 4096 ? 3 : (n >= 500 ? 9 : 17);
                        for (int bits : new int[] {8, 4}) {
                            DType in = types[t++ % 3];
                            check(ctx, seed++, rows, f[0], f[1], bits, in, 0.9f, 0.75f);
                        }
                        check(ctx, seed++, rows, f[0], f[1], 4, DType.F32, 1f, 1f);
                    }
                }
            }
        }
    }

    @Test
    void manyRowsSplitOverThreadsMatchSimulation() {
        try (Context ctx = Context.open(Backend.CPU)) {
            check(ctx, 50, 301, 24, 24, 4, DType.F16, 0.95f, 0.9f);
            check(ctx, 51, 97, 3, 5, 8, DType.BF16, 0.5f, 1f);
        }
    }

    /**
     * The transform is x·(P1 ⊗ P2) with the Kronecker product's entry (k·n2 + l, i·n2 + j) =
     * P1[k][i]·P2[l][j]: against that dense product in FP64, unclipped, every scale is amax/qmax to
     * float rounding and every code is within half a step (plus float error) of y/scale.
     */
    @Test
    void equalsDenseKroneckerProductInFp64() {
        try (Context ctx = Context.open(Backend.CPU)) {
            long seed = 70;
            for (int[] f : new int[][] {{3, 5}, {5, 3}, {7, 9}, {24, 24}}) {
                for (int bits : new int[] {8, 4}) {
                    int n1 = f[0], n2 = f[1], n = n1 * n2, rows = 5;
                    Random rnd = new Random(seed++);
                    float[] x = KernelChecks.activations(rnd, rows, n);
                    float[] p1 = factor(rnd, n1);
                    float[] p2 = factor(rnd, n2);
                    double qmax = bits == 8 ? 127 : 7;
                    try (Tensor xt = ctx.upload(x, rows, n);
                            Tensor p1t = ctx.upload(p1, n1, n1);
                            Tensor p2t = ctx.upload(p2, n2, n2);
                            QuantizedTensor q = ctx.allocateQuantized(rows, n, bits, Granularity.PER_ROW, 0)) {
                        ctx.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q);
                        float[] scales = q.scales().toFloatArray();
                        int[] got = codes(q, rows, n);
                        for (int r = 0; r < rows; r++) {
                            double[] y = new double[n];
                            double amax = 0;
                            for (int out = 0; out < n; out++) {
                                int i = out / n2, j = out % n2;
                                double s = 0;
                                for (int in = 0; in < n; in++) {
                                    int k = in / n2, l = in % n2;
                                    s += (double) x[r * n + in] * ((double) p1[k * n1 + i] * p2[l * n2 + j]);
                                }
                                y[out] = s;
                                amax = Math.max(amax, Math.abs(s));
                            }
                            assertEquals(amax / qmax, scales[r], 1e-5 * amax / qmax, "scale of row " + r + ", " + n1 + "x" + n2);
                            for (int c = 0; c < n; c++) {
                                double err = Math.abs(y[c] / scales[r] - got[r * n + c]);
                                if (err > 0.5 + qmax * 2e-5) { // float32 vs FP64 y: ~1e-6 of amax
                                    fail("row " + r + " col " + c + " of " + n1 + "x" + n2 + ": code " + got[r * n + c]
                                            + " but y/scale = " + y[c] / scales[r]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void clippingSaturatesTheLargestValues() {
        try (Context ctx = Context.open(Backend.CPU)) {
            int n1 = 4, n2 = 6, n = 24, rows = 7;
            Random rnd = new Random(90);
            float[] x = KernelChecks.activations(rnd, rows, n);
            float[] p1 = factor(rnd, n1);
            float[] p2 = factor(rnd, n2);
            try (Tensor xt = ctx.upload(x, rows, n);
                    Tensor p1t = ctx.upload(p1, n1, n1);
                    Tensor p2t = ctx.upload(p2, n2, n2);
                    QuantizedTensor full = ctx.allocateQuantized(rows, n, 8, Granularity.PER_ROW, 0);
                    QuantizedTensor clipped = ctx.allocateQuantized(rows, n, 8, Granularity.PER_ROW, 0)) {
                ctx.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, full);
                ctx.kronQuantizeInto(xt, p1t, p2t, 0.5f, 0.5f, clipped);
                float[] sFull = full.scales().toFloatArray();
                float[] sClip = clipped.scales().toFloatArray();
                int[] cClip = codes(clipped, rows, n);
                for (int r = 0; r < rows; r++) {
                    assertEquals(sFull[r] * 0.5f, sClip[r], sFull[r] * 1e-6f, "halved range of row " + r);
                    int saturated = 0;
                    for (int c = 0; c < n; c++) {
                        saturated += Math.abs(cClip[r * n + c]) == 127 ? 1 : 0;
                    }
                    assertTrue(saturated >= 1, "row " + r + " should have saturated codes at clip 0.5");
                }
            }
        }
    }

    @Test
    void nonFiniteInputNamesTheFirstBadElement() {
        try (Context ctx = Context.open(Backend.CPU)) {
            int n1 = 5, n2 = 7, n = 35, rows = 6;
            Random rnd = new Random(3);
            float[] x = KernelChecks.activations(rnd, rows, n);
            x[4 * n + 2] = Float.POSITIVE_INFINITY;
            x[2 * n + 33] = Float.NaN;
            x[2 * n + 34] = Float.NEGATIVE_INFINITY;
            float[] p1 = factor(rnd, n1);
            float[] p2 = factor(rnd, n2);
            try (Tensor xt = ctx.upload(x, rows, n);
                    Tensor p1t = ctx.upload(p1, n1, n1);
                    Tensor p2t = ctx.upload(p2, n2, n2);
                    QuantizedTensor q = ctx.allocateQuantized(rows, n, 4, Granularity.PER_ROW, 0)) {
                NonFiniteInputException e = assertThrows(NonFiniteInputException.class,
                        () -> ctx.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q));
                assertTrue(e.getMessage().contains("NaN") && e.getMessage().contains("row 2, column 33"), e.getMessage());
                // A finite x with a non-finite P2 entry: y is not finite; named as y's first bad column.
                float[] finite = KernelChecks.activations(rnd, rows, n);
                xt.copyFrom(finite);
                p2[3 * n2 + 4] = Float.NaN;  // column 4 of every Y row: y[i * 7 + 4], first at column 4
                p2t.copyFrom(p2);
                e = assertThrows(NonFiniteInputException.class, () -> ctx.kronQuantizeInto(xt, p1t, p2t, 1f, 1f, q));
                assertTrue(e.getMessage().contains("transformed row") && e.getMessage().contains("row 0, column 4"),
                        e.getMessage());
            }
        }
    }

    @Test
    void badArgumentsAreRejectedByJava() {
        try (Context ctx = Context.open(Backend.CPU);
                Tensor x = ctx.upload(new float[3 * 15], 3, 15);
                Tensor p1 = ctx.upload(new float[9], 3, 3);
                Tensor p2 = ctx.upload(new float[25], 5, 5);
                Tensor p2wide = ctx.upload(new float[30], 5, 6);
                Tensor big = ctx.upload(new float[129 * 129], 129, 129);
                Tensor s8 = ctx.upload(new byte[45], DType.S8, 3, 15);
                QuantizedTensor q = ctx.allocateQuantized(3, 15, 4, Granularity.PER_ROW, 0);
                QuantizedTensor qTensor = ctx.allocateQuantized(3, 15, 4, Granularity.PER_TENSOR, 0);
                QuantizedTensor qShort = ctx.allocateQuantized(2, 15, 4, Granularity.PER_ROW, 0)) {
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, p2, p2, 1f, 1f, q), "25 != 15");
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, p1, p2wide, 1f, 1f, q));
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, big, p2, 1f, 1f, q));
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(s8, p1, p2, 1f, 1f, q));
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, p1, p2, 0f, 1f, q));
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, p1, p2, 1f, Float.NaN, q));
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, p1, p2, 1.5f, 1f, q));
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, p1, p2, 1f, 1f, qTensor));
            assertThrows(IllegalArgumentException.class, () -> ctx.kronQuantizeInto(x, p1, p2, 1f, 1f, qShort));
            assertThrows(NullPointerException.class, () -> ctx.kronQuantizeInto(x, p1, null, 1f, 1f, q));
            ctx.kronQuantizeInto(x, p1, p2, 1f, 1f, q); // the valid call works (all zeros: scale 1, codes 0)
            assertArrayEquals(new float[] {1f, 1f, 1f}, q.scales().toFloatArray());
        }
    }

    /** The C ABI's own checks, called directly (the Java API would stop these first). */
    @Test
    void badArgumentsAreRejectedByTheCAbi() throws Exception {
        try (Context ctx = Context.open(Backend.CPU);
                Tensor x = ctx.upload(new float[3 * 15], 3, 15);
                Tensor p1 = ctx.upload(new float[9], 3, 3);
                Tensor p2 = ctx.upload(new float[25], 5, 5);
                Tensor tiny = ctx.allocate(DType.F32, 1, 2);
                QuantizedTensor q = ctx.allocateQuantized(3, 15, 8, Granularity.PER_ROW, 0)) {
            Field f = Context.class.getDeclaredField("handle");
            f.setAccessible(true);
            lowbit_context h = (lowbit_context) f.get(ctx);
            int f32 = DType.F32.code;
            int s8 = DType.S8.code;
            // Valid: OK.
            assertEquals(0, LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0));
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 129,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "n2 must be in 1..128");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 0, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "n1 must be in 1..128");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 5, p2.handle(), 3,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "buffer p1");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 14, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "leading dimension of x");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 4, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "buffer x");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), s8, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "input dtype");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 5, q.values().handle(), 15, q.scales().handle(), 0), "bits must be 8 or 4");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    Float.POSITIVE_INFINITY, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "clip_max");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, -0.5f, 8, q.values().handle(), 15, q.scales().handle(), 0), "clip_min");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 3), "precision must be LOWBIT_KRON_EXACT");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), -1), "LOWBIT_KRON_HALF (2)");
            // TF32 and HALF on the CPU backend: the exact products (the same bits as EXACT).
            assertEquals(0, LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), LowbitNative.LOWBIT_KRON_TF32));
            assertEquals(0, LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), LowbitNative.LOWBIT_KRON_HALF));
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 4, q.values().handle(), 15, q.scales().handle(), 0), "must be even");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, p2.handle(), 5,
                    1f, 1f, 8, q.values().handle(), 15, tiny.handle(), 0), "buffer scales");
            assertAbi(LowbitNative.lowbit_kron_quantize(h, x.handle(), f32, 3, 15, p1.handle(), 3, null, 5,
                    1f, 1f, 8, q.values().handle(), 15, q.scales().handle(), 0), "buffer p2 is null");
        }
    }

    private static void assertAbi(int status, String part) {
        assertEquals(LowbitNative.LOWBIT_ERR_INVALID_ARGUMENT, status, "status for '" + part + "'");
        String msg = LowbitNative.lowbit_last_error().getString();
        assertTrue(msg.startsWith("lowbit_kron_quantize: ") && msg.contains(part), "message '" + msg + "' should name '"
                + part + "'");
    }
}
