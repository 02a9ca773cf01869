package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.Random;
import lowbit.abq.ActivationQuantizer;
import lowbit.abq.IntCodes;

/**
 * Checks of the bit-plane kernels ({@code lowbit_bitplane_quantize}, {@code lowbit_bitplane_gemm})
 * against Java integer references, for any {@link Context} (CPU tests and the GPU test share
 * them). Outputs are poisoned first, so an element a kernel skips shows up as a mismatch.
 */
final class BitPlaneChecks {
    private BitPlaneChecks() {}

    /** One operand: codes in the full range of its width, a zero point per row when asymmetric. */
    static final class Operand {
        final int rows, cols, bits;
        final boolean signed;
        final int[] codes, zeros;  // zeros null: none
        final float[] scales;

        Operand(Random rnd, int rows, int cols, int bits, boolean signed, boolean zeroPoints) {
            this.rows = rows;
            this.cols = cols;
            this.bits = bits;
            this.signed = signed;
            int lo = BitPlanes.minCode(bits, signed), hi = BitPlanes.maxCode(bits, signed);
            codes = new int[rows * cols];
            for (int i = 0; i < codes.length; i++) {
                // Mostly uniform, some rows all at an extreme (the worst case for the sums).
                int r = i / cols;
                codes[i] = r % 7 == 3 ? (r % 2 == 0 ? hi : lo) : lo + rnd.nextInt(hi - lo + 1);
            }
            zeros = zeroPoints ? new int[rows] : null;
            if (zeroPoints) {
                for (int r = 0; r < rows; r++) {
                    zeros[r] = lo + rnd.nextInt(hi - lo + 1);
                }
            }
            scales = new float[rows];
            for (int r = 0; r < rows; r++) {
                scales[r] = (float) Math.exp(rnd.nextGaussian() - 4);
            }
        }

        long value(int r, int c) {
            return codes[r * cols + c] - (zeros == null ? 0 : zeros[r]);
        }

        BitPlaneTensor upload(Context ctx) {
            return ctx.uploadBitPlanes(codes, rows, cols, bits, signed, zeros, scales);
        }
    }

    static long[] product(Operand x, Operand w) {
        long[] acc = new long[x.rows * w.rows];
        for (int i = 0; i < x.rows; i++) {
            for (int j = 0; j < w.rows; j++) {
                long s = 0;
                for (int c = 0; c < x.cols; c++) {
                    s += x.value(i, c) * w.value(j, c);
                }
                acc[i * w.rows + j] = s;
            }
        }
        return acc;
    }

    static String name(int p, boolean xs, boolean xz, int q, boolean ws, boolean wz, int m, int n, int k) {
        return "W" + q + (ws ? "s" : "u") + (wz ? "z" : "") + "A" + p + (xs ? "s" : "u") + (xz ? "z" : "") + " " + m
                + "x" + n + "x" + k;
    }

    /**
     * The GEMM's integer part (S32 output, exact: the shapes keep |acc| < 2^31) and its epilogue (F32,
     * F16, BF16, with and without bias) bit for bit against Java.
     */
    static void gemm(Context ctx, long seed, int m, int n, int k, int p, boolean xSigned, boolean xZero, int q,
                     boolean wSigned, boolean wZero) {
        Random rnd = new Random(seed);
        Operand x = new Operand(rnd, m, k, p, xSigned, xZero);
        Operand w = new Operand(rnd, n, k, q, wSigned, wZero);
        String what = name(p, xSigned, xZero, q, wSigned, wZero, m, n, k);
        long[] want = product(x, w);
        float[] bias = new float[n];
        for (int j = 0; j < n; j++) {
            bias[j] = (float) rnd.nextGaussian();
        }
        try (BitPlaneTensor tx = x.upload(ctx); BitPlaneTensor tw = w.upload(ctx);
             Tensor c = ctx.allocate(DType.S32, m, n); Tensor bt = ctx.upload(bias, 1, n)) {
            KernelChecks.poison(c);
            ctx.gemmBitPlanesInto(tx, tw, null, c);
            int[] got = c.toIntArray();
            for (int i = 0; i < m * n; i++) {
                if (Math.abs(want[i]) >= 1L << 31) {
                    fail(what + ": test shape too large for an exact S32 check: |acc| = " + Math.abs(want[i]));
                }
                if (got[i] != want[i]) {
                    fail(what + ": acc[" + i / n + "][" + i % n + "] = " + got[i] + ", want " + want[i]);
                }
            }
            for (DType out : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                for (boolean withBias : new boolean[] {false, true}) {
                    try (Tensor y = ctx.allocate(out, m, n)) {
                        KernelChecks.poison(y);
                        ctx.gemmBitPlanesInto(tx, tw, withBias ? bt : null, y);
                        float[] gotY = KernelChecks.toFloats(y);
                        for (int i = 0; i < m * n; i++) {
                            float v = (float) want[i] * x.scales[i / n];
                            v = v * w.scales[i % n];
                            if (withBias) {
                                v = v + bias[i % n];
                            }
                            float e = out == DType.F32 ? v : out == DType.F16 ? Half.toFloat(Half.fromFloat(v))
                                    : Half.bf16ToFloat(Half.bf16FromFloat(v));
                            if (Float.floatToIntBits(gotY[i]) != Float.floatToIntBits(e)) {
                                fail(what + " -> " + out + (withBias ? " +bias" : "") + ": out[" + i / n + "][" + i % n
                                        + "] = " + gotY[i] + ", want " + e);
                            }
                        }
                    }
                }
            }
        }
    }

    /** A large-accumulator case: 8x8-bit unsigned codes at the extremes, F32 output vs (float)long. */
    static void gemmWide(Context ctx, long seed, int m, int n, int k) {
        Random rnd = new Random(seed);
        Operand x = new Operand(rnd, m, k, 8, false, true);
        Operand w = new Operand(rnd, n, k, 8, false, true);
        Arrays.fill(x.scales, 1f);
        Arrays.fill(w.scales, 1f);
        long[] want = product(x, w);
        try (BitPlaneTensor tx = x.upload(ctx); BitPlaneTensor tw = w.upload(ctx); Tensor y = ctx.allocate(DType.F32, m, n)) {
            KernelChecks.poison(y);
            ctx.gemmBitPlanesInto(tx, tw, null, y);
            float[] got = y.toFloatArray();
            for (int i = 0; i < m * n; i++) {
                assertEquals((float) want[i], got[i], 0f, "wide " + m + "x" + n + "x" + k + " out[" + i + "] (acc " + want[i] + ")");
            }
        }
    }

    /**
     * Per-token bit-plane quantization on {@code ctx} against {@link ActivationQuantizer}: scales, zero
     * points, row sums and every plane word (padding included) equal.
     */
    static void quantize(Context ctx, long seed, int rows, int cols, int bits, boolean asymmetric, DType in) {
        Random rnd = new Random(seed);
        float[] x = KernelChecks.activations(rnd, rows, cols);
        if (rows > 2) {
            Arrays.fill(x, cols, 2 * cols, 0f);                     // an all-zero row: scale 1
            for (int c = 0; c < cols; c++) {
                x[2 * cols + c] = Math.abs(x[2 * cols + c]) + 1f;   // an all-positive row: z = 0
            }
        }
        quantize(ctx, KernelChecks.roundTo(in, x), rows, cols, bits, asymmetric, in);
    }

    /** {@link #quantize(Context, long, int, int, int, boolean, DType)} of the given x (values of type in). */
    static void quantize(Context ctx, float[] x, int rows, int cols, int bits, boolean asymmetric, DType in) {
        IntCodes want = new ActivationQuantizer(bits, asymmetric).quantize(x, rows, cols);
        String what = (asymmetric ? "asymmetric " : "symmetric ") + bits + "-bit " + in + " " + rows + "x" + cols;
        try (Tensor xt = KernelChecks.upload(ctx, in, x, rows, cols);
             BitPlaneTensor q = ctx.allocateBitPlanes(rows, cols, bits, asymmetric)) {
            KernelChecks.poison(q.planes());
            KernelChecks.poison(q.sums());
            KernelChecks.poison(q.scales());
            if (asymmetric) {
                KernelChecks.poison(q.zeroPoints());
            }
            ctx.quantizeBitPlanesInto(xt, q);
            assertArrayEquals(want.scales(), q.scales().toFloatArray(), "scales of " + what);
            if (asymmetric) {
                assertArrayEquals(want.zeroPoints(), q.zeroPoints().toIntArray(), "zero points of " + what);
            }
            assertArrayEquals(BitPlanes.rowSums(want.codes(), rows, cols), q.sums().toIntArray(), "row sums of " + what);
            int[] words = q.planes().toIntArray();
            assertArrayEquals(BitPlanes.pack(want.codes(), rows, cols, bits, !asymmetric), words, "plane words of " + what);
            assertArrayEquals(want.codes(), BitPlanes.unpack(words, rows, cols, bits, !asymmetric), "codes of " + what);
        }
    }
}
