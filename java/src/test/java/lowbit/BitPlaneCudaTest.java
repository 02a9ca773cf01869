package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.Random;
import lowbit.abq.AbqLinear;
import lowbit.abq.ActivationQuantizer;
import lowbit.abq.WeightQuantizer;
import org.junit.jupiter.api.Test;

/**
 * The CUDA bit-plane kernels (binary tensor cores, m16n8k256 AND.POPC): the same Java references as
 * the CPU tests ({@link BitPlaneChecks}: exact S32 accumulators, F32/F16/BF16 epilogues bit for bit,
 * the activation packer's planes word for word), every width pair, both kernels (the decode path
 * for M·p ≤ 64 activation planes, the tiled one above), K not a multiple of 64/256/512, and the CPU
 * backend's bits on small-M shapes and LLaMA-sized layers. Skipped, visibly, without a CUDA device.
 */
class BitPlaneCudaTest extends GpuTestBase {
    @Test
    void gemmMatchesJavaForTheAbqWidths() {
        int[][] widths = BitPlaneKernelTest.WIDTHS;
        // {M, N, K}: decode kernel (M·p <= 64), tiled kernel, ragged edges, K past one 512-bit chunk.
        int[][] shapes = {{1, 7, 67}, {1, 200, 1000}, {3, 65, 513}, {40, 33, 576}, {70, 130, 1100}, {5, 1, 1}};
        long seed = 1;
        for (int[] wd : widths) {
            for (int[] s : shapes) {
                BitPlaneChecks.gemm(gpu, seed++, s[0], s[1], s[2], wd[0], false, true, wd[1], false, true);
                BitPlaneChecks.gemm(gpu, seed++, s[0], s[1], s[2], wd[0], true, false, wd[1], true, false);
            }
        }
        for (int p = 1; p <= 8; p++) {
            for (int q = 1; q <= 8; q++) {
                BitPlaneChecks.gemm(gpu, seed++, 9, 21, 300, p, (p + q) % 2 == 0, p % 3 == 0, q, q % 2 == 1, q % 3 != 0);
            }
        }
        BitPlaneChecks.gemmWide(gpu, 3, 9, 11, 4000);
    }

    /** M·p activation plane rows up to which the CUDA backend takes its decode kernel (bitplane_gemm.cu). */
    static final int DECODE_MAX_PLANE_ROWS = 64;

    /**
     * The decode kernel and its hand-over to the tiled one: M in {1, 3, 8, 16} and the first M past
     * M·p = 64, odd N (a partial last block) and odd K (from under one 512-bit step to several
     * rounds of the split-K loop), the ABQ widths W2A8, W2*A8 (signed 3 planes), W4A4, W6A6, W8A8 and
     * odd ones, zero points on both sides, every output type: the CPU backend's bits, and the raw
     * accumulator equal to the exact Java product. 2-bit weights at M <= 16 take the INT8
     * weight-streaming kernel instead (2-bit codes expanded from the planes), M = 17+ the tiled one.
     */
    @Test
    void smallMMatchesTheCpuBackend() {
        // {p, x signed, x zero points, q, w signed, w zero points}
        Object[][] widths = {
            {8, false, true, 2, false, true},    // W2A8: asymmetric 8-bit tokens, asymmetric 2-bit channels
            {8, false, true, 3, true, false},    // W2*A8: bit-balanced weights, signed 3 planes
            {4, false, true, 4, false, true},    // W4A4
            {6, false, true, 6, false, true},    // W6A6
            {8, false, true, 8, false, true},    // W8A8 as planes
            {8, true, false, 3, true, true},     // signed activations, signed weights with zero points
            {5, true, true, 7, false, false},    // odd widths, 7 planes = 7 m16 tiles per block
            {3, false, false, 1, false, true},   // 1-bit weights: 16 channels per block
            // 2-bit weights at M <= 16 run the INT8 weight-streaming kernel (gemv_stream.cu): every
            // activation width and signedness it stages from planes, signed and unsigned codes.
            {8, true, false, 2, true, false},    // signed 8-bit activations (S8 operand), signed W2
            {8, false, false, 2, true, true},    // unsigned 8-bit (U8 operand), no activation zero points
            {4, false, true, 2, false, true},    // W2A4
            {7, true, true, 2, false, false},    // signed 7-bit activations: sign-extended bytes
            {1, false, false, 2, true, false},   // 1-bit activations
        };
        // K: under one 512-value step, not a multiple of 128, several 2048-value stages (split K
        // reduced in a cluster or with atomics); N: a partial 128-channel tile, one channel.
        int[][] nk = {{37, 1001}, {203, 4099}, {9, 9000}, {1, 130}, {300, 2500}};
        long seed = 1000;
        for (Object[] w : widths) {
            int p = (Integer) w[0];
            int q = (Integer) w[3];
            int above = q == 2 ? 17 : DECODE_MAX_PLANE_ROWS / p + 1;
            for (int m : new int[] {1, 3, 8, 9, 16, above}) {
                for (int[] s : nk) {
                    sameAsCpu(seed++, m, s[0], s[1], p, (Boolean) w[1], (Boolean) w[2], q, (Boolean) w[4],
                            (Boolean) w[5]);
                }
            }
        }
        // Accumulators past 2^31 (8 x 8 bits, out[0][0] = K * 255 * 255): the int64 combine and the S32
        // output's low bits, decode (M = 2) and tiled (M = 9).
        for (int m : new int[] {2, 9}) {
            Random rnd = new Random(seed++);
            int k = 70_001;
            BitPlaneChecks.Operand x = new BitPlaneChecks.Operand(rnd, m, k, 8, false, true);
            BitPlaneChecks.Operand w = new BitPlaneChecks.Operand(rnd, 5, k, 8, false, true);
            Arrays.fill(x.codes, 0, k, 255);
            Arrays.fill(w.codes, 0, k, 255);
            x.zeros[0] = 0;
            w.zeros[0] = 0;
            sameAsCpu(rnd, x, w);
        }
    }

    /**
     * 2-bit unsigned weights at M <= 8 take their code words masked in place (gemv_stream.cu,
     * W2Codes::Masked): code s of a byte as 4^s·code, up to 192, an unsigned 8-bit MMA operand, one
     * int32 sum per scale. Every code at 3 and every activation at its extreme (255 unsigned with
     * and without zero points, -128 signed): the scale-64 terms at their largest, where a signed
     * operand would read 192 as -64. One and several K stages, one and two channel tiles: the CPU
     * backend's bits, and the exact product.
     */
    @Test
    void w2MaskedCodesAtTheirExtremes() {
        long seed = 5000;
        int[][] nk = {{9, 4099}, {200, 9000}};
        // {x signed, x zero points}
        boolean[][] xs = {{false, true}, {false, false}, {true, false}};
        for (boolean[] xk : xs) {
            for (int m : new int[] {1, 8}) {
                for (int[] s : nk) {
                    Random rnd = new Random(seed++);
                    BitPlaneChecks.Operand x = new BitPlaneChecks.Operand(rnd, m, s[1], 8, xk[0], xk[1]);
                    BitPlaneChecks.Operand w = new BitPlaneChecks.Operand(rnd, s[0], s[1], 2, false, true);
                    Arrays.fill(x.codes, xk[0] ? -128 : 255);
                    Arrays.fill(w.codes, 3);
                    if (x.zeros != null) {
                        Arrays.fill(x.zeros, 0);
                    }
                    Arrays.fill(w.zeros, 0);
                    sameAsCpu(rnd, x, w);
                }
            }
        }
    }

    /**
     * One GEMM on the GPU and on the CPU backend, poisoned outputs of every type (S32, F32, F16, BF16;
     * with and without bias): the same bits. The S32 output also equals the Java product's low 32 bits.
     */
    static void sameAsCpu(long seed, int m, int n, int k, int p, boolean xSigned, boolean xZero, int q,
                          boolean wSigned, boolean wZero) {
        Random rnd = new Random(seed);
        BitPlaneChecks.Operand x = new BitPlaneChecks.Operand(rnd, m, k, p, xSigned, xZero);
        BitPlaneChecks.Operand w = new BitPlaneChecks.Operand(rnd, n, k, q, wSigned, wZero);
        sameAsCpu(rnd, x, w);
    }

    static void sameAsCpu(Random rnd, BitPlaneChecks.Operand x, BitPlaneChecks.Operand w) {
        int m = x.rows, n = w.rows, k = x.cols;
        String what = BitPlaneChecks.name(x.bits, x.signed, x.zeros != null, w.bits, w.signed, w.zeros != null, m, n, k)
                + (w.bits == 2 && m <= 16 ? " (INT8 streaming kernel)"
                        : m * x.bits <= DECODE_MAX_PLANE_ROWS ? " (decode kernel)" : " (tiled kernel)");
        long[] want = BitPlaneChecks.product(x, w);
        float[] bias = new float[n];
        for (int j = 0; j < n; j++) {
            bias[j] = (float) rnd.nextGaussian();
        }
        try (BitPlaneTensor gx = x.upload(gpu); BitPlaneTensor gw = w.upload(gpu); Tensor gb = gpu.upload(bias, 1, n);
             BitPlaneTensor cx = x.upload(cpu); BitPlaneTensor cw = w.upload(cpu); Tensor cb = cpu.upload(bias, 1, n)) {
            for (DType out : new DType[] {DType.S32, DType.F32, DType.F16, DType.BF16}) {
                for (boolean withBias : out == DType.S32 ? new boolean[] {false} : new boolean[] {false, true}) {
                    try (Tensor yg = gpu.allocate(out, m, n); Tensor yc = cpu.allocate(out, m, n)) {
                        KernelChecks.poison(yg);
                        KernelChecks.poison(yc);
                        gpu.gemmBitPlanesInto(gx, gw, withBias ? gb : null, yg);
                        cpu.gemmBitPlanesInto(cx, cw, withBias ? cb : null, yc);
                        int[] g = rawBits(yg), c = rawBits(yc);
                        for (int i = 0; i < m * n; i++) {
                            if (g[i] != c[i]) {
                                fail(what + " -> " + out + (withBias ? " +bias" : "") + ": out[" + i / n + "][" + i % n
                                        + "] bits " + Integer.toHexString(g[i]) + " on the GPU, "
                                        + Integer.toHexString(c[i]) + " on the CPU (exact acc " + want[i] + ")");
                            }
                            if (out == DType.S32 && g[i] != (int) want[i]) {
                                fail(what + ": acc[" + i / n + "][" + i % n + "] = " + g[i] + ", want the low bits of "
                                        + want[i]);
                            }
                        }
                    }
                }
            }
        }
    }

    /** Every element of an S32/F32/F16/BF16 tensor as its raw bit pattern. */
    private static int[] rawBits(Tensor t) {
        switch (t.dtype()) {
            case S32:
                return t.toIntArray();
            case F32: {
                float[] f = t.toFloatArray();
                int[] b = new int[f.length];
                for (int i = 0; i < f.length; i++) {
                    b[i] = Float.floatToRawIntBits(f[i]);
                }
                return b;
            }
            default: {
                short[] s = t.toShortArray();
                int[] b = new int[s.length];
                for (int i = 0; i < s.length; i++) {
                    b[i] = s[i] & 0xffff;
                }
                return b;
            }
        }
    }

    @Test
    void quantizeMatchesJava() {
        long seed = 1;
        // Up to 16384 columns the CUDA backend takes its row kernel (the row in registers), past it
        // the loop kernel: both sides of that edge. Few rows wider than 8192 columns are cut among
        // the blocks of a cluster on sm_90 (4 and 8 blocks per row here: 142 and 256 words).
        int[][] shapes = {{1, 1}, {1, 64}, {3, 65}, {5, 200}, {300, 1000}, {2, 4096}, {5, 9000}, {3, 16384},
            {3, 16385}};
        for (int[] s : shapes) {
            for (int bits = 1; bits <= 8; bits++) {
                for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                    BitPlaneChecks.quantize(gpu, seed++, s[0], s[1], bits, true, in);
                    if (bits >= 2) {
                        BitPlaneChecks.quantize(gpu, seed++, s[0], s[1], bits, false, in);
                    }
                }
            }
        }
    }

    /**
     * Rows whose values lie (about) half-way between two codes: with a power-of-two scale exactly
     * (unit 0.25), else within a rounding of it (0.3, whose reciprocal is inexact: x times it may
     * land on the other side of k + 0.5 than x / scale). The row kernel's reciprocal must give
     * those to the division, as the Java quantizer rounds them. Every width, both code kinds, a short
     * and a 16384-wide row.
     */
    @Test
    void quantizeRoundsTiesAsTheDivision() {
        for (float unit : new float[] {0.25f, 0.3f}) {
            for (int cols : new int[] {200, 16384}) {
                for (int bits = 2; bits <= 8; bits++) {
                    for (boolean asymmetric : new boolean[] {true, false}) {
                        float[] x = nearTies(unit, 2, cols, bits, asymmetric);
                        for (DType in : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                            BitPlaneChecks.quantize(gpu, KernelChecks.roundTo(in, x), 2, cols, bits, asymmetric, in);
                        }
                    }
                }
            }
        }
    }

    /** Rows of (k + 1/2) * unit over the codes k, and one value qmax * unit per row (the range's end). */
    private static float[] nearTies(float unit, int rows, int cols, int bits, boolean asymmetric) {
        int qmax = asymmetric ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
        int lo = asymmetric ? 0 : -qmax;
        float[] x = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int k = lo + (c + r) % (qmax - lo);  // lo .. qmax - 1
                x[r * cols + c] = (k + 0.5f) * unit;
            }
            x[r * cols + r] = qmax * unit;
        }
        return x;
    }

    @Test
    void nonFiniteActivationsAreReported() {
        float[] x = new float[4 * 100];
        x[250] = Float.NaN;
        x[390] = Float.NEGATIVE_INFINITY;
        try (Tensor t = gpu.upload(x, 4, 100); BitPlaneTensor q = gpu.allocateBitPlanes(4, 100, 8, true)) {
            gpu.quantizeBitPlanesInto(t, q);
            NonFiniteInputException e = assertThrows(NonFiniteInputException.class, gpu::synchronize);
            assertTrue(e.getMessage().contains("lowbit_bitplane_quantize") && e.getMessage().contains("row 2, column 50"),
                    e.getMessage());
            gpu.synchronize();  // reported once
        }
    }

    /** LLaMA-sized layers: the GPU's bits equal the CPU backend's (W2A8, W2*A8, W4A4, W8A8). */
    @Test
    void sameBitsAsTheCpuBackend() {
        Random rnd = new Random(17);
        int k = 4096, n = 4096;
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.02);
        }
        WeightQuantizer[] wq = {WeightQuantizer.perChannel(2), WeightQuantizer.bitBalanced(2), WeightQuantizer.perChannel(4),
            WeightQuantizer.perChannel(8)};
        ActivationQuantizer[] aq = {ActivationQuantizer.asymmetric(8), ActivationQuantizer.asymmetric(8),
            ActivationQuantizer.asymmetric(4), ActivationQuantizer.asymmetric(8)};
        for (int c = 0; c < wq.length; c++) {
            for (int m : new int[] {1, 16, 64}) {
                float[] x = new float[m * k];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) (rnd.nextGaussian() * (i % k == 7 ? 30 : 1));
                }
                try (AbqLinear g = AbqLinear.create(gpu, w, null, n, k, wq[c], aq[c]);
                     AbqLinear h = AbqLinear.create(cpu, w, null, n, k, wq[c], aq[c])) {
                    float[] yg = new float[m * n], yc = new float[m * n];
                    g.forward(x, m, yg);
                    h.forward(x, m, yc);
                    assertArrayEquals(yc, yg, wq[c] + " x " + aq[c] + " M=" + m + ": GPU differs from CPU");
                }
            }
        }
    }
}
