package lowbit;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Dynamic per-token (PER_ROW, computed scales) quantization on the CUDA backend across the shapes
 * that pick the kernels of native/src/cuda/quantize_per_token.cu and their fallbacks, bit-exact with
 * the reference (and so with the CPU backend), outputs poisoned first:
 *
 * <ul>
 *   <li>1, 2 or 4 units of 8 columns per thread, one warp (8, 72 columns) up to 512 threads
 *       (16384 columns); 4104 columns (a partly idle last warp); 4100 columns (not taken: the
 *       older kernels); rows wider than 16384 columns, few of them: cut among the blocks of a
 *       cluster on sm_90 (16392, 28672 and 65536 columns: 5, 8 and 8 blocks), else the older kernels;
 *   <li>few rows (fewer rows than resident blocks: one row per block) and many rows (4095, 10001:
 *       each block walks several rows, so both halves of the two-row pipeline and a row past the
 *       end are exercised);
 *   <li>values on and next to rounding boundaries (the reciprocal quantizer's fallback to the
 *       division), and non-finite values at late columns (the first in row-major order is
 *       reported).
 * </ul>
 *
 * Run once as is and once with {@code LOWBIT_ROWQUANT=legacy} (and {@code prefetch}) in the
 * environment to check every variant; the expected values do not depend on it. Skipped without a
 * CUDA device.
 */
class PerTokenQuantizeCudaTest extends GpuTestBase {
    private static final DType[] INPUTS = {DType.F32, DType.F16, DType.BF16};

    @Test
    void fewRowsOfEveryWidthMatchReference() {
        long seed = 5000;
        for (int cols : new int[] {8, 72, 4096, 4100, 4104, 14336, 16384, 16392, 28672, 65536}) {
            for (int rows : new int[] {1, 7, 33}) {
                for (DType in : INPUTS) {
                    for (int bits : new int[] {8, 4}) {
                        KernelChecks.quantize(gpu, seed++, rows, cols, bits, Granularity.PER_ROW, 0, in);
                    }
                }
            }
        }
    }

    @Test
    void manyRowsPerBlockMatchReference() {
        long seed = 6000;
        for (int[] s : new int[][] {{10001, 8}, {10001, 72}, {4095, 4096}, {4095, 4104}}) {
            for (DType in : INPUTS) {
                for (int bits : new int[] {8, 4}) {
                    KernelChecks.quantize(gpu, seed++, s[0], s[1], bits, Granularity.PER_ROW, 0, in);
                }
            }
        }
        // 14336 columns: 448-thread blocks (F32: 4 units per thread), a few rows each.
        KernelChecks.quantize(gpu, seed++, 4095, 14336, 8, Granularity.PER_ROW, 0, DType.F16);
        KernelChecks.quantize(gpu, seed++, 4095, 14336, 4, Granularity.PER_ROW, 0, DType.BF16);
        KernelChecks.quantize(gpu, seed++, 1500, 14336, 4, Granularity.PER_ROW, 0, DType.F32);
        KernelChecks.quantize(gpu, seed, 1500, 16384, 8, Granularity.PER_ROW, 0, DType.F32);
    }

    /**
     * Rows whose values sit on rounding boundaries of x / scale (exact ties: a power-of-two scale)
     * or within a few ulps of them (an arbitrary scale, F32), and at 2^-14 .. 2^-11 from them (the
     * reciprocal quantizer's threshold, 2^-13): the codes must still be those of the correctly
     * rounded division, rounded half to even.
     */
    @Test
    void valuesAtRoundingBoundariesMatchReference() {
        Random rnd = new Random(7000);
        for (int cols : new int[] {4104, 14336, 28672}) {
            int rows = cols > 16384 ? 5 : 37;  // 28672: few rows, a cluster per row on sm_90
            for (int bits : new int[] {8, 4}) {
                int qmax = bits == 8 ? 127 : 7;
                for (DType in : INPUTS) {
                    float[] x = new float[rows * cols];
                    for (int r = 0; r < rows; r++) {
                        // F16 / BF16: amax = qmax * 2^e, so the scale is 2^e and every tie is exact in the dtype.
                        boolean powerOfTwo = in != DType.F32 || r % 3 == 0;
                        float amax = powerOfTwo ? qmax * (float) Math.scalb(1.0, rnd.nextInt(9) - 6)
                                : (float) Math.exp(rnd.nextGaussian() * 3);
                        float s = amax / qmax;
                        x[r * cols + rnd.nextInt(cols)] = rnd.nextBoolean() ? amax : -amax;
                        for (int c = 0; c < cols; c++) {
                            int i = r * cols + c;
                            if (x[i] != 0f) {
                                continue;
                            }
                            float k = rnd.nextInt(2 * qmax) - qmax + 0.5f;  // -qmax + 0.5 .. qmax - 0.5
                            float v;
                            switch (rnd.nextInt(4)) {
                                case 0: v = k * s; break;
                                case 1: v = nudge(k * s, rnd.nextInt(7) - 3); break;
                                case 2: v = (k + (rnd.nextBoolean() ? 1 : -1) * (float) Math.scalb(1.0, -11 - rnd.nextInt(4))) * s; break;
                                default: v = (float) rnd.nextGaussian() * s * qmax / 4;
                            }
                            x[i] = Math.max(-amax, Math.min(amax, v));
                        }
                    }
                    x = KernelChecks.roundTo(in, x);
                    KernelChecks.quantizeValues(gpu, x, rows, cols, bits, Granularity.PER_ROW, 0, in, "boundaries ");
                }
            }
        }
    }

    private static float nudge(float v, int ulps) {
        for (; ulps > 0; ulps--) {
            v = Math.nextUp(v);
        }
        for (; ulps < 0; ulps++) {
            v = Math.nextDown(v);
        }
        return v;
    }

    /**
     * Non-finite values in the last columns of an early row and in the first columns of later
     * rows: the smallest row-major index is reported (row and column), for rows on both halves of
     * the pipeline, every input type and both widths; the context stays usable.
     */
    @Test
    void firstNonFiniteAtLateColumnIsReported() {
        int[][] cases = {  // rows, cols, the row holding the first finding
            {33, 14336, 20}, {4095, 4096, 2000}, {4095, 4096, 3001}, {9, 8, 4}, {9, 28672, 4},
        };
        for (int[] k : cases) {
            int rows = k[0], cols = k[1], row = k[2];
            for (DType in : INPUTS) {
                float[] x = KernelChecks.roundTo(in, KernelChecks.activations(new Random(row + cols + in.ordinal()), rows, cols));
                int firstCol = cols >= 16 ? cols - 9 : cols - 1;
                x[row * cols + cols - 1] = Float.NaN;
                x[row * cols + firstCol] = Float.NEGATIVE_INFINITY;
                x[(row + 1) * cols] = Float.POSITIVE_INFINITY;
                x[(rows - 1) * cols + 3] = Float.NaN;
                for (int bits : new int[] {8, 4}) {
                    String what = in + " " + rows + "x" + cols + " " + bits + "-bit";
                    try (Tensor t = KernelChecks.upload(gpu, in, x, rows, cols)) {
                        NonFiniteInputException e = assertThrows(NonFiniteInputException.class, () -> {
                            try (QuantizedTensor q = gpu.quantize(t, bits, Granularity.PER_ROW)) {
                                gpu.synchronize();
                            }
                        }, what);
                        assertTrue(Pattern.compile("\\brow " + row + ", column " + firstCol + "\\b").matcher(e.getMessage()).find(),
                                what + ": " + e.getMessage());
                    }
                }
            }
        }
        KernelChecks.quantize(gpu, 5, 7, 4096, 8, Granularity.PER_ROW, 0, DType.F16);  // the context stays usable
    }
}
