package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.Random;

/**
 * Checks of every kernel against {@link Reference}, shared by the CPU tests and the GPU tests: run
 * the same checks on any {@link Context}. Outputs are poisoned before each call, so an element the
 * kernel did not write shows up as a mismatch.
 */
final class KernelChecks {
    private KernelChecks() {}

    /** Activations with a realistic shape: mostly Gaussian, a few outlier channels, heavy tails. */
    static float[] activations(Random rnd, int rows, int cols) {
        float[] x = new float[rows * cols];
        boolean[] outlier = new boolean[cols];
        for (int c = 0; c < cols; c++) {
            outlier[c] = rnd.nextInt(40) == 0;
        }
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                double v = rnd.nextGaussian();
                if (outlier[c]) {
                    v *= 30;
                } else if (rnd.nextInt(200) == 0) {
                    v *= 8;
                }
                x[r * cols + c] = (float) v;
            }
        }
        return x;
    }

    /** Values rounded through the tensor dtype (F16/BF16 inputs lose precision before quantization). */
    static float[] roundTo(DType t, float[] x) {
        float[] y = x.clone();
        for (int i = 0; i < y.length; i++) {
            if (t == DType.F16) {
                y[i] = Half.toFloat(Half.fromFloat(y[i]));
            } else if (t == DType.BF16) {
                y[i] = Half.bf16ToFloat(Half.bf16FromFloat(y[i]));
            }
        }
        return y;
    }

    static Tensor upload(Context ctx, DType t, float[] x, int rows, int cols) {
        if (t == DType.F32) {
            return ctx.upload(x, rows, cols);
        }
        short[] bits = new short[x.length];
        for (int i = 0; i < x.length; i++) {
            bits[i] = t == DType.F16 ? Half.fromFloat(x[i]) : Half.bf16FromFloat(x[i]);
        }
        return ctx.upload(bits, t, rows, cols);
    }

    /** Fills a tensor with a recognisable garbage pattern. */
    static void poison(Tensor t) {
        switch (t.dtype()) {
            case F32: {
                float[] p = new float[(int) t.storageElements()];
                Arrays.fill(p, Float.NaN);
                t.copyFrom(p);
                break;
            }
            case S32: {
                int[] p = new int[(int) t.storageElements()];
                Arrays.fill(p, 0x7eadbeef);
                t.copyFrom(p);
                break;
            }
            case S8:
            case S4: {
                byte[] p = new byte[(int) t.storageBytes()];
                Arrays.fill(p, (byte) 0x5a);
                t.copyFrom(p);
                break;
            }
            default: {
                short[] p = new short[(int) t.storageElements()];
                Arrays.fill(p, (short) 0x7e55);
                t.copyFrom(p);
            }
        }
    }

    /** Quantize on {@code ctx}; values and scales must equal the reference bit for bit. */
    static void quantize(Context ctx, long seed, int rows, int cols, int bits, Granularity g, int group, DType in) {
        Random rnd = new Random(seed);
        float[] x = roundTo(in, activations(rnd, rows, cols));
        quantizeValues(ctx, x, rows, cols, bits, g, group, in, "");
    }

    /**
     * Quantize the given values (already representable in {@code in}) on {@code ctx} with computed
     * scales, outputs poisoned first; values and scales must equal the reference bit for bit.
     */
    static void quantizeValues(Context ctx, float[] x, int rows, int cols, int bits, Granularity g, int group, DType in,
            String label) {
        String what = label + in + " " + rows + "x" + cols + " " + bits + "-bit " + g + (group > 0 ? " G" + group : "");
        Reference.Quantized want = Reference.quantize(x, rows, cols, bits, g, group, null);
        try (Tensor xt = upload(ctx, in, x, rows, cols);
                QuantizedTensor q = ctx.allocateQuantized(rows, cols, bits, g, group)) {
            poison(q.values());
            poison(q.scales());
            ctx.quantizeInto(xt, q);
            assertArrayEquals(want.scales, q.scales().toFloatArray(), "scales of " + what);
            int[] got = bits == 8 ? fromS8(q.values().toByteArray()) : Reference.unpackS4(q.values().toByteArray(), rows, cols);
            assertArrayEquals(want.q, got, "values of " + what);
            if (bits == 4 && (cols & 1) == 1) {
                byte[] packed = q.values().toByteArray();
                int ld = cols + 1;
                for (int r = 0; r < rows; r++) {
                    int pad = (packed[(r * ld + cols) / 2] >> 4) & 0xF;
                    assertEquals(0, pad, "padding nibble of row " + r + " of " + what);
                }
            }
            // The quantization error of every element is at most half a step of its scale.
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    float s = want.scales[Reference.scaleIndex(g, r, c, cols, group)];
                    double err = Math.abs(x[r * cols + c] - (double) want.q[r * cols + c] * s);
                    if (err > 0.5 * s * (1 + 1e-5)) {
                        fail("element (" + r + "," + c + ") of " + what + " off by " + err + " > scale/2 = " + s / 2);
                    }
                }
            }
        }
    }

    /**
     * The reference expansion of a flatten plan: x' (rows x src.length) with x'[r][j] = x[r][src[j]] *
     * mult[j] in float32 (x is rows x srcCols), what the kernels quantize.
     */
    static float[] expand(float[] x, int rows, int srcCols, int[] src, float[] mult) {
        int k = src.length;
        float[] expanded = new float[rows * k];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < k; j++) {
                expanded[r * k + j] = x[r * srcCols + src[j]] * mult[j];
            }
        }
        return expanded;
    }

    /**
     * Flatten-and-quantize on {@code ctx} with a random plan (1-3 adjacent copies per channel,
     * multiplier 1/k times a smoothing factor, zero-multiplier padding to a multiple of 8): equal to
     * expanding in float32 and then quantizing, bit for bit.
     */
    static void flattenQuantize(Context ctx, long seed, int rows, int cols, int bits, Granularity g, DType in) {
        Random rnd = new Random(seed);
        float[] x = roundTo(in, activations(rnd, rows, cols));
        int[] copies = new int[cols];
        int kOut = 0;
        for (int c = 0; c < cols; c++) {
            copies[c] = 1 + (rnd.nextInt(6) == 0 ? 1 + rnd.nextInt(2) : 0);
            kOut += copies[c];
        }
        int padded = (kOut + 7) / 8 * 8;
        int[] src = new int[padded];
        float[] mult = new float[padded];
        int j = 0;
        for (int c = 0; c < cols; c++) {
            float smooth = (float) Math.exp(rnd.nextGaussian() * 0.3);
            for (int i = 0; i < copies[c]; i++, j++) {
                src[j] = c;
                mult[j] = smooth / copies[c];
            }
        }
        float[] expanded = expand(x, rows, cols, src, mult);
        int group = g == Granularity.PER_GROUP ? 8 : 0;
        Reference.Quantized want = Reference.quantize(expanded, rows, padded, bits, g, group, null);
        String what = "flatten " + in + " " + rows + "x" + cols + "->" + padded + " " + bits + "-bit " + g;
        try (Tensor xt = upload(ctx, in, x, rows, cols);
                ExpansionPlan plan = ctx.uploadPlan(src, mult, cols);
                QuantizedTensor q = ctx.allocateQuantized(rows, padded, bits, g, group)) {
            poison(q.values());
            poison(q.scales());
            ctx.flattenQuantizeInto(xt, plan, q);
            assertArrayEquals(want.scales, q.scales().toFloatArray(), "scales of " + what);
            int[] got = bits == 8 ? fromS8(q.values().toByteArray()) : Reference.unpackS4(q.values().toByteArray(), rows, padded);
            assertArrayEquals(want.q, got, "values of " + what);
            // Static scales: the same values again.
            poison(q.values());
            ctx.flattenQuantizeWithScales(xt, plan, q);
            int[] again = bits == 8 ? fromS8(q.values().toByteArray()) : Reference.unpackS4(q.values().toByteArray(), rows, padded);
            assertArrayEquals(want.q, again, "values of " + what + " with static scales");
        }
    }

    /**
     * Plans that steer the GPU flatten gathers through each of their cases (plan_window.cuh): the
     * identity (aligned runs), one split in two after 8, 9, .., 15 unsplit channels in turn (runs
     * starting at every s % 8), every 4th channel split in two (every unit has a repeat), and every
     * 11th channel split into 2, 3 or 5 copies ("split2", "split3", "split5").
     */
    static final String[] PLAN_KINDS = {"identity", "offsets", "every4th", "split2", "split3", "split5"};

    /** Copies of each of {@code srcCols} channels under plan {@code kind} (see {@link #PLAN_KINDS}). */
    static int[] planCopies(String kind, int srcCols) {
        int[] copies = new int[srcCols];
        int run = 0;
        int offset = 0;
        for (int c = 0; c < srcCols; c++) {
            switch (kind) {
                case "identity":
                    copies[c] = 1;
                    break;
                case "offsets":
                    copies[c] = ++run >= 8 + offset ? 2 : 1;
                    if (copies[c] == 2) {
                        run = 0;
                        offset = (offset + 1) % 8;
                    }
                    break;
                case "every4th":
                    copies[c] = c % 4 == 3 ? 2 : 1;
                    break;
                default: // splitK
                    copies[c] = c % 11 == 5 ? Integer.parseInt(kind.substring("split".length())) : 1;
            }
        }
        return copies;
    }

    /**
     * Flatten-and-quantize through plan {@code kind} (adjacent copies with multiplier smoothing / k),
     * trimmed or padded (padding: scattered source columns times 0.25, the scalar gathers) to
     * {@code outCols} expanded columns when {@code outCols > 0}: equal to expanding in float32 and
     * quantizing, bit for bit, on every quantize path a plan takes -- computed PER_ROW (per token)
     * and PER_TENSOR scales, and given PER_TENSOR, PER_ROW, PER_COLUMN and (outCols % 8 == 0)
     * PER_GROUP scales (not the computed ones: some codes saturate). Outputs are poisoned first;
     * S4 rows of odd width must end in a zero nibble.
     */
    static void flattenQuantizePlan(Context ctx, long seed, int rows, int srcCols, String kind, int outCols, int bits,
            DType in) {
        flattenQuantizePlan(ctx, seed, rows, srcCols, kind, outCols, bits, in, false);
    }

    /**
     * As above; {@code appended}: the plan in FlattenPlan's appended order instead (the first copy
     * of every channel at the channel's own index, the extra copies after the last channel, in
     * channel order), the layout the GPU row kernel (flatten_rows.cu) streams.
     */
    static void flattenQuantizePlan(Context ctx, long seed, int rows, int srcCols, String kind, int outCols, int bits,
            DType in, boolean appended) {
        Random rnd = new Random(seed);
        float[] x = roundTo(in, activations(rnd, rows, srcCols));
        int[] copies = planCopies(kind, srcCols);
        int natural = Arrays.stream(copies).sum();
        int k = outCols > 0 ? outCols : natural;
        int[] src = new int[k];
        float[] mult = new float[k];
        int j = 0;
        if (appended) {
            float[] smooth = new float[srcCols];
            for (int c = 0; c < srcCols && j < k; c++, j++) {
                smooth[c] = (float) Math.exp(rnd.nextGaussian() * 0.3);
                src[j] = c;
                mult[j] = smooth[c] / copies[c];
            }
            for (int c = 0; c < srcCols && j < k; c++) {
                for (int i = 1; i < copies[c] && j < k; i++, j++) {
                    src[j] = c;
                    mult[j] = smooth[c] / copies[c];
                }
            }
        } else {
            for (int c = 0; c < srcCols && j < k; c++) {
                float smooth = (float) Math.exp(rnd.nextGaussian() * 0.3);
                for (int i = 0; i < copies[c] && j < k; i++, j++) {
                    src[j] = c;
                    mult[j] = smooth / copies[c];
                }
            }
        }
        for (; j < k; j++) {
            src[j] = (int) ((j * 7L) % srcCols);
            mult[j] = 0.25f;
        }
        float[] expanded = expand(x, rows, srcCols, src, mult);
        String what = "flatten " + kind + (appended ? " appended " : " ") + in + " " + rows + "x" + srcCols + "->" + k + " " + bits + "-bit";
        try (Tensor xt = upload(ctx, in, x, rows, srcCols); ExpansionPlan plan = ctx.uploadPlan(src, mult, srcCols)) {
            for (Granularity g : new Granularity[] {Granularity.PER_ROW, Granularity.PER_TENSOR}) {
                Reference.Quantized want = Reference.quantize(expanded, rows, k, bits, g, 0, null);
                try (QuantizedTensor q = ctx.allocateQuantized(rows, k, bits, g, 0)) {
                    poison(q.values());
                    poison(q.scales());
                    ctx.flattenQuantizeInto(xt, plan, q);
                    assertArrayEquals(want.scales, q.scales().toFloatArray(), "scales of " + what + " " + g);
                    assertCodes(want.q, q, rows, k, bits, what + " " + g);
                }
            }
            for (Granularity g : Granularity.values()) {
                int group = g == Granularity.PER_GROUP ? 8 : 0;
                if (g == Granularity.PER_GROUP && k % 8 != 0) {
                    continue;
                }
                float[] given = Reference.quantize(expanded, rows, k, bits, g, group, null).scales;
                for (int i = 0; i < given.length; i++) {
                    given[i] *= i % 3 == 0 ? 1f : i % 3 == 1 ? 0.5f : 1.25f;
                }
                Reference.Quantized want = Reference.quantize(expanded, rows, k, bits, g, group, given);
                try (QuantizedTensor q = ctx.allocateQuantized(rows, k, bits, g, group)) {
                    q.scales().copyFrom(given);
                    poison(q.values());
                    ctx.flattenQuantizeWithScales(xt, plan, q);
                    assertCodes(want.q, q, rows, k, bits, what + " given " + g);
                }
            }
        }
    }

    /**
     * Flatten plans whose columns read far apart in x's row, plan {@code kind}: "reverse" (the
     * channels in reverse order), "stride3" (every third channel), "shuffle" (a random
     * permutation); multipliers random. Quantized with given PER_TENSOR, PER_ROW and PER_COLUMN
     * scales (some codes saturate), outputs poisoned: equal to expanding in float32 and quantizing,
     * bit for bit. On the GPU a block of 1024 expanded columns then reads its sources backwards or
     * reads more source columns than it stages in shared memory (flatten_staged.cu gathers those
     * from global memory).
     */
    static void flattenQuantizeFarPlan(Context ctx, long seed, int rows, int srcCols, String kind, int bits, DType in) {
        Random rnd = new Random(seed);
        float[] x = roundTo(in, activations(rnd, rows, srcCols));
        int[] src;
        switch (kind) {
            case "reverse":
                src = new int[srcCols];
                for (int j = 0; j < srcCols; j++) {
                    src[j] = srcCols - 1 - j;
                }
                break;
            case "stride3":
                src = new int[(srcCols + 2) / 3];
                for (int j = 0; j < src.length; j++) {
                    src[j] = 3 * j;
                }
                break;
            case "shuffle":
                src = new int[srcCols];
                for (int j = 0; j < srcCols; j++) {
                    src[j] = j;
                }
                for (int j = srcCols - 1; j > 0; j--) {
                    int i = rnd.nextInt(j + 1);
                    int t = src[i];
                    src[i] = src[j];
                    src[j] = t;
                }
                break;
            default:
                throw new IllegalArgumentException("unknown plan kind " + kind);
        }
        int k = src.length;
        float[] mult = new float[k];
        for (int j = 0; j < k; j++) {
            mult[j] = (float) Math.exp(rnd.nextGaussian() * 0.3);
        }
        float[] expanded = expand(x, rows, srcCols, src, mult);
        String what = "flatten " + kind + " " + in + " " + rows + "x" + srcCols + "->" + k + " " + bits + "-bit";
        try (Tensor xt = upload(ctx, in, x, rows, srcCols); ExpansionPlan plan = ctx.uploadPlan(src, mult, srcCols)) {
            for (Granularity g : new Granularity[] {Granularity.PER_TENSOR, Granularity.PER_ROW, Granularity.PER_COLUMN}) {
                float[] given = Reference.quantize(expanded, rows, k, bits, g, 0, null).scales;
                for (int i = 0; i < given.length; i++) {
                    given[i] *= i % 3 == 0 ? 1f : i % 3 == 1 ? 0.5f : 1.25f;
                }
                Reference.Quantized want = Reference.quantize(expanded, rows, k, bits, g, 0, given);
                try (QuantizedTensor q = ctx.allocateQuantized(rows, k, bits, g, 0)) {
                    q.scales().copyFrom(given);
                    poison(q.values());
                    ctx.flattenQuantizeWithScales(xt, plan, q);
                    assertCodes(want.q, q, rows, k, bits, what + " given " + g);
                }
            }
        }
    }

    /** q's codes equal {@code want} (rows × cols); S4 rows of odd width end in a zero nibble. */
    static void assertCodes(int[] want, QuantizedTensor q, int rows, int cols, int bits, String what) {
        byte[] packed = q.values().toByteArray();
        int[] got = bits == 8 ? fromS8(packed) : Reference.unpackS4(packed, rows, cols);
        assertArrayEquals(want, got, "values of " + what);
        if (bits == 4 && (cols & 1) == 1) {
            int ld = cols + 1;
            for (int r = 0; r < rows; r++) {
                assertEquals(0, (packed[(r * ld + cols) / 2] >> 4) & 0xF, "padding nibble of row " + r + " of " + what);
            }
        }
    }

    static int[] fromS8(byte[] b) {
        int[] q = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            q[i] = b[i];
        }
        return q;
    }

    /** Random integers in the symmetric grid of {@code bits}, rows × cols. */
    static int[] randomInts(Random rnd, int rows, int cols, int bits, boolean fullRange) {
        int[] q = new int[rows * cols];
        int lo = fullRange ? -(1 << (bits - 1)) : -((1 << (bits - 1)) - 1);
        int hi = (1 << (bits - 1)) - 1;
        for (int i = 0; i < q.length; i++) {
            q[i] = lo + rnd.nextInt(hi - lo + 1);
        }
        return q;
    }

    static Tensor uploadInts(Context ctx, int[] q, int rows, int cols, DType t) {
        return t == DType.S8 ? ctx.upload(Reference.toS8(q), DType.S8, rows, cols)
                : ctx.upload(Reference.packS4(q, rows, cols), DType.S4, rows, cols);
    }

    /** Raw integer GEMM: exact against long arithmetic, including -128 and -8 operands. */
    static void gemmS32(Context ctx, long seed, int m, int n, int k, DType at, DType bt) {
        Random rnd = new Random(seed);
        int[] a = randomInts(rnd, m, k, at.bits(), true);
        int[] b = randomInts(rnd, n, k, bt.bits(), true);
        long[] want = Reference.gemm(a, b, m, n, k);
        try (Tensor ta = uploadInts(ctx, a, m, k, at);
                Tensor tb = uploadInts(ctx, b, n, k, bt);
                Tensor c = ctx.allocate(DType.S32, m, n)) {
            poison(c);
            ctx.gemmInto(ta, tb, c);
            int[] got = c.toIntArray();
            for (int i = 0; i < m * n; i++) {
                if (got[i] != want[i]) {
                    fail(at + "x" + bt + " " + m + "x" + n + "x" + k + ": C[" + i / n + "][" + i % n + "] = " + got[i]
                            + ", want " + want[i]);
                }
            }
        }
    }

    /**
     * The quantized linear layer end to end: quantize x (per token or per tensor) and w (per channel),
     * fused GEMM + epilogue. F32 output must equal the float32-step reference bit for bit, and all
     * outputs must be within quantization error of the FP64 product.
     */
    static void linear(Context ctx, long seed, int m, int n, int k, int aBits, int bBits, Granularity ag,
            boolean bias, DType out, double maxRelError) {
        Random rnd = new Random(seed);
        float[] x = activations(rnd, m, k);
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.05);
        }
        float[] b = new float[n];
        for (int j = 0; j < n; j++) {
            b[j] = (float) rnd.nextGaussian();
        }
        Reference.Quantized qx = Reference.quantize(x, m, k, aBits, ag, 0, null);
        Reference.Quantized qw = Reference.quantize(w, n, k, bBits, Granularity.PER_ROW, 0, null);
        long[] acc = Reference.gemm(qx.q, qw.q, m, n, k);
        double[] exact = Reference.matmul(x, w, m, n, k);
        float[] want = new float[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                want[i * n + j] = Reference.epilogue(acc[i * n + j], qx.scales[ag == Granularity.PER_ROW ? i : 0],
                        qw.scales[j], b[j], bias);
                if (bias) {
                    exact[i * n + j] += b[j];
                }
            }
        }
        String what = "W" + bBits + "A" + aBits + " " + ag + " " + m + "x" + n + "x" + k + (bias ? " +bias" : "") + " -> "
                + out;
        try (Tensor xt = ctx.upload(x, m, k);
                Tensor wt = ctx.upload(w, n, k);
                Tensor bt = ctx.upload(b, 1, n);
                QuantizedTensor qa = ctx.quantize(xt, aBits, ag);
                QuantizedTensor qb = ctx.quantize(wt, bBits, Granularity.PER_ROW);
                Tensor y = ctx.allocate(out, m, n)) {
            poison(y);
            ctx.gemmInto(qa, qb, bias ? bt : null, y);
            float[] got = toFloats(y);
            for (int i = 0; i < m * n; i++) {
                float expected = out == DType.F32 ? want[i]
                        : out == DType.F16 ? Half.toFloat(Half.fromFloat(want[i]))
                                : Half.bf16ToFloat(Half.bf16FromFloat(want[i]));
                if (Float.floatToIntBits(got[i]) != Float.floatToIntBits(expected)) {
                    fail(what + ": out[" + i / n + "][" + i % n + "] = " + got[i] + ", reference " + expected);
                }
            }
            double rel = Reference.relativeError(got, exact);
            assertTrue(rel < maxRelError, what + ": relative error vs FP64 " + rel + " >= " + maxRelError);
        }
    }

    static float[] toFloats(Tensor y) {
        if (y.dtype() == DType.F32) {
            return y.toFloatArray();
        }
        short[] s = y.toShortArray();
        float[] f = new float[s.length];
        for (int i = 0; i < s.length; i++) {
            f[i] = y.dtype() == DType.F16 ? Half.toFloat(s[i]) : Half.bf16ToFloat(s[i]);
        }
        return f;
    }
}
