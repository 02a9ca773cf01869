package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import lowbit.abq.AbqLinear;
import lowbit.abq.ActivationQuantizer;
import lowbit.abq.WeightQuantizer;
import org.junit.jupiter.api.Test;

/**
 * The CUDA bit-plane kernels (binary tensor cores, m16n8k256 AND.POPC): the same Java references as
 * the CPU tests ({@link BitPlaneChecks}: exact S32 accumulators, F32/F16/BF16 epilogues bit for bit,
 * the activation packer's planes word for word), every width pair, both tile shapes (M·p ≤ 32 and
 * larger), K not a multiple of 64/256/512, and the CPU backend's bits on LLaMA-sized layers.
 * Skipped, visibly, without a CUDA device.
 */
class BitPlaneCudaTest extends GpuTestBase {
    @Test
    void gemmMatchesJavaForTheAbqWidths() {
        int[][] widths = BitPlaneKernelTest.WIDTHS;
        // {M, N, K}: decode (small tile), prefill (large tile), ragged edges, K past one 512-bit chunk.
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

    @Test
    void quantizeMatchesJava() {
        long seed = 1;
        int[][] shapes = {{1, 1}, {1, 64}, {3, 65}, {5, 200}, {300, 1000}};
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
