package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import lowbit.Backend;
import lowbit.Context;
import lowbit.CpuIsa;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The native CPU execution of a quantized layer against the Java reference: the quantized
 * activation codes and scales are equal (the integer part), and so is every output bit (the
 * epilogue is defined identically), for W8A8, W4A8 and W4A4, static, dynamic and per-token scales,
 * identity, flattened, smoothed and padded plans, odd sizes, on every CPU instruction-set level.
 */
class NativeLinearKernelTest {
    private static Context ctx;

    @BeforeAll
    static void open() {
        ctx = Context.open(Backend.CPU);
    }

    @AfterAll
    static void close() {
        ctx.close();
    }

    private static float[] gaussian(SplittableRandom r, int count, double sigma) {
        float[] out = new float[count];
        for (int i = 0; i < count; i++) {
            out[i] = (float) (r.nextGaussian() * sigma);
        }
        return out;
    }

    private static List<FlattenPlan> plans(SplittableRandom r, int k) {
        int[] copies = new int[k];
        double[] scale = new double[k];
        for (int j = 0; j < k; j++) {
            copies[j] = 1 + (r.nextInt(4) == 0 ? 1 + r.nextInt(3) : 0);
            scale[j] = Math.exp(r.nextGaussian() * 0.5);
        }
        return List.of(FlattenPlan.identity(k), FlattenPlan.ofCopies(copies),
                FlattenPlan.ofCopies(copies).withInputScale(scale).paddedTo(16));
    }

    @Test
    void nativeEqualsJavaBitForBit() {
        SplittableRandom r = new SplittableRandom(11);
        int[][] shapes = {{7, 45, 13}, {1, 3, 1}, {19, 101, 9}, {33, 77, 65}};
        int[][] widths = {{8, 8}, {4, 8}, {4, 4}};
        int checked = 0;
        for (CpuIsa isa : new CpuIsa[] {CpuIsa.SCALAR, CpuIsa.AVX2, CpuIsa.AVX512_VNNI}) {
            try (Context c = Context.open(Backend.CPU)) {
                try {
                    c.setCpuIsa(isa);
                } catch (RuntimeException unsupported) {
                    continue; // this CPU lacks the level; the others still run
                }
                for (int[] shape : shapes) {
                    int m = shape[0], k = shape[1], n = shape[2];
                    float[] x = gaussian(r, m * k, 1);
                    x[k / 2] = 40f; // an outlier channel value
                    float[] w = gaussian(r, n * k, 0.1);
                    float[] bias = gaussian(r, n, 1);
                    for (FlattenPlan plan : plans(r, k)) {
                        for (int[] bits : widths) {
                            for (QuantConfig.ActivationScale mode : QuantConfig.ActivationScale.values()) {
                                for (boolean perChannel : new boolean[] {true, false}) {
                                    QuantizedLinear java = QuantizedLinear.create(w, bias, n, k, plan, bits[0], bits[1],
                                            perChannel, null, mode, 3.5f);
                                    try (QuantizedLinear nat = java.on(c)) {
                                        String what = "W" + bits[0] + "A" + bits[1] + " " + mode + " " + isa + " "
                                                + m + "x" + k + "x" + n + " K'=" + plan.expandedFeatures();
                                        QuantizedLinear.Activations ja = java.quantizeActivations(x, m);
                                        QuantizedLinear.Activations na = ((NativeLinearKernel) nat.kernel()).activations(x, m);
                                        assertArrayEquals(ja.codes().data, na.codes().data, "activation codes, " + what);
                                        assertArrayEquals(ja.scales(), na.scales(), "activation scales, " + what);
                                        float[] yj = new float[m * n];
                                        float[] yn = new float[m * n];
                                        java.forward(x, m, yj);
                                        nat.forward(x, m, yn);
                                        for (int i = 0; i < yj.length; i++) {
                                            assertEquals(Float.floatToIntBits(yj[i]), Float.floatToIntBits(yn[i]),
                                                    "output " + i + ", " + what);
                                        }
                                        checked++;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assertEquals(true, checked >= 4 * 3 * 3 * 3 * 2, "at least the scalar level ran: " + checked);
    }

    @Test
    void identityPlanIsRecognized() {
        assertEquals(true, NativeLinearKernel.isIdentity(FlattenPlan.identity(7)));
        assertEquals(false, NativeLinearKernel.isIdentity(FlattenPlan.ofCopies(new int[] {1, 2, 1})));
        assertEquals(false, NativeLinearKernel.isIdentity(FlattenPlan.identity(3).withInputScale(new double[] {1, 0.5, 1})));
        assertEquals(false, NativeLinearKernel.isIdentity(FlattenPlan.identity(5).paddedTo(8)));
    }

    /** Decode-sized calls (M = 1..4, layers large enough for the native N split) equal the Java kernel bit for bit. */
    @Test
    void decodeSizedCallsEqualJavaBitForBit() {
        SplittableRandom r = new SplittableRandom(23);
        int k = 577, n = 1539;
        float[] w = gaussian(r, n * k, 0.1);
        float[] bias = gaussian(r, n, 1);
        for (int bits : new int[] {8, 4}) {
            for (FlattenPlan plan : List.of(FlattenPlan.identity(k), FlattenPlan.identity(k).withInputScale(scales(r, k)))) {
                QuantizedLinear java = QuantizedLinear.create(w, bias, n, k, plan, bits, 8, true, null,
                        QuantConfig.ActivationScale.DYNAMIC_PER_TOKEN, Float.NaN);
                try (QuantizedLinear nat = java.on(ctx)) {
                    for (int m = 1; m <= 4; m++) {
                        float[] x = gaussian(r, m * k, 1);
                        float[] yj = new float[m * n];
                        float[] yn = new float[m * n];
                        java.forward(x, m, yj);
                        Arrays.fill(yn, Float.NaN);
                        nat.forward(x, m, yn);
                        for (int i = 0; i < yj.length; i++) {
                            assertEquals(Float.floatToIntBits(yj[i]), Float.floatToIntBits(yn[i]),
                                    "W" + bits + "A8 M=" + m + " output " + i + " K'=" + plan.expandedFeatures());
                        }
                    }
                }
            }
        }
    }

    private static double[] scales(SplittableRandom r, int k) {
        double[] s = new double[k];
        for (int j = 0; j < k; j++) s[j] = Math.exp(r.nextGaussian() * 0.5);
        return s;
    }

    @Test
    void concurrentForwardCallsGiveTheSameResult() throws Exception {
        SplittableRandom r = new SplittableRandom(5);
        int k = 64, n = 48;
        float[] w = gaussian(r, n * k, 0.1);
        FlattenPlan plan = FlattenPlan.forThreshold(new float[k], 1.0);
        try (QuantizedLinear layer = QuantizedLinear.create(w, null, n, k, plan, 4, 8, true, null,
                QuantConfig.ActivationScale.DYNAMIC_PER_TOKEN, 0f).on(ctx)) {
            List<float[]> inputs = new ArrayList<>();
            List<float[]> expected = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                float[] x = gaussian(r, (i + 1) * k, 2);
                float[] y = new float[(i + 1) * n];
                layer.forward(x, i + 1, y);
                inputs.add(x);
                expected.add(y);
            }
            ExecutorService pool = Executors.newFixedThreadPool(4);
            try {
                List<Future<float[]>> futures = new ArrayList<>();
                for (int rep = 0; rep < 4; rep++) {
                    for (int i = 0; i < inputs.size(); i++) {
                        int t = i + 1;
                        float[] x = inputs.get(i);
                        futures.add(pool.submit(() -> {
                            float[] y = new float[t * n];
                            layer.forward(x, t, y);
                            return y;
                        }));
                    }
                }
                for (int f = 0; f < futures.size(); f++) {
                    assertArrayEquals(expected.get(f % inputs.size()), futures.get(f).get());
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void closedLayerRefusesWorkAndCloseTwiceIsSafe() {
        int k = 5, n = 2;
        QuantizedLinear layer = QuantizedLinear.create(new float[n * k], null, n, k, FlattenPlan.identity(k),
                Precision.INT8, true, QuantizedLinear.DYNAMIC).on(ctx);
        assertEquals("CPU", layer.backend());
        layer.close();
        layer.close();
        assertThrows(IllegalStateException.class, () -> layer.forward(new float[k], 1, new float[n]));
    }

    @Test
    void nonFiniteInputIsRejectedNatively() {
        int k = 5, n = 2;
        try (QuantizedLinear layer = QuantizedLinear.create(new float[n * k], null, n, k, FlattenPlan.identity(k),
                Precision.INT8, true, QuantizedLinear.DYNAMIC).on(ctx)) {
            float[] x = new float[k];
            x[3] = Float.NaN;
            assertThrows(lowbit.NonFiniteInputException.class, () -> layer.forward(x, 1, new float[n]));
        }
    }
}
