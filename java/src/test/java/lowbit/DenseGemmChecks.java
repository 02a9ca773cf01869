package lowbit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

/**
 * The dense float GEMM ({@link Context#denseGemm}) on one context against an FP64 reference: random
 * operands rounded to the operand type, the product and the old output summed in FP64. Every output
 * element is checked against an error bound for FP32 summation of length K (the cuBLAS path) plus one
 * rounding to the output type; outputs start poisoned, so an element never written fails.
 */
final class DenseGemmChecks {
    private DenseGemmChecks() {}

    /** Unit roundoff of a type (half an ulp at 1). */
    static double unitRoundoff(DType t) {
        switch (t) {
            case F16: return 0x1p-11;
            case BF16: return 0x1p-8;
            default: return 0x1p-24;
        }
    }

    static void check(Context ctx, long seed, DType t, int m, int n, int k, boolean bTransposed, boolean accumulate) {
        Random rnd = new Random(seed);
        float[] a = KernelChecks.roundTo(t, gaussian(rnd, m * k));
        float[] b = KernelChecks.roundTo(t, gaussian(rnd, n * k));
        float[] old = KernelChecks.roundTo(t, gaussian(rnd, m * n));
        try (Tensor ta = KernelChecks.upload(ctx, t, a, m, k);
                Tensor tb = KernelChecks.upload(ctx, t, b, bTransposed ? n : k, bTransposed ? k : n);
                Tensor out = accumulate ? KernelChecks.upload(ctx, t, old, m, n) : ctx.allocate(t, m, n)) {
            if (!accumulate) KernelChecks.poison(out);
            ctx.denseGemm(ta, tb, bTransposed, out, accumulate);
            float[] got = KernelChecks.toFloats(out);
            // FP32 summation of K terms: |error| <= gamma_K * sum |a b| with gamma_K ~ K u; cuBLAS may
            // split K, which only shortens the chains. Plus one rounding of the result to the type, and
            // when accumulating a second one: cuBLAS may round the product to the type before adding
            // the old output (seen on the H100 for F16).
            double u32 = 0x1p-24;
            String what = t + " " + m + "x" + n + "x" + k + (bTransposed ? " b N x K" : " b K x N") + (accumulate ? " +=" : "");
            for (int r = 0; r < m; r++) {
                for (int c = 0; c < n; c++) {
                    double exact = accumulate ? old[r * n + c] : 0.0;
                    double magnitude = Math.abs(exact);
                    for (int p = 0; p < k; p++) {
                        double prod = (double) a[r * k + p] * (bTransposed ? b[c * k + p] : b[p * n + c]);
                        exact += prod;
                        magnitude += Math.abs(prod);
                    }
                    double bound = (k + 2) * u32 * magnitude + unitRoundoff(t) * (Math.abs(exact) + (accumulate ? magnitude : 0))
                            + Double.MIN_NORMAL;
                    double g = got[r * n + c];
                    assertTrue(Math.abs(g - exact) <= bound,
                            what + ": out[" + r + "][" + c + "] = " + g + ", FP64 " + exact + ", bound " + bound);
                }
            }
        }
    }

    static float[] gaussian(Random rnd, int count) {
        float[] x = new float[count];
        for (int i = 0; i < count; i++) x[i] = (float) rnd.nextGaussian();
        return x;
    }
}
