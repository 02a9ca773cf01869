package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.bytedeco.javacpp.Loader;
import org.junit.jupiter.api.Test;

/**
 * Both GEMM kernels — the Java kernel and OpenBLAS, each forced — and the routing entry point
 * against an FP64 reference, element by element, with the classic error bound of a dot product of
 * length k: {@code |ĉ − c| ≤ (k + 2)·u·Σ_p |a_ip|·|b_pj|}, u = 2⁻²⁴ in FP32 mode (two input
 * roundings plus k float operations), 2⁻⁵³ in FP64 mode. Outputs start as NaN where they are
 * overwritten (an element not written fails) and as random values where the product is added.
 */
class GemmTest {
    private static final int[][] SHAPES = { // m, n, k: odd, 1-wide, tall (row panels), wide (column panels)
        {1, 1, 1}, {1, 1, 300}, {1, 700, 1}, {3, 5, 7}, {65, 257, 3}, {130, 300, 77}, {67, 513, 129}, {700, 45, 33}, {517, 3, 301}, {37, 1030, 230},
        {1100, 70, 120}, {300, 300, 300}
    };

    private interface Kernel {
        void multiply(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate);
    }

    private static final List<Object[]> KERNELS = List.of(
            new Object[] {"java parallel", (Kernel) (f, a, b, c, m, n, k, acc) -> JavaGemm.multiply(f, a, b, c, m, n, k, acc, true)},
            new Object[] {"java serial", (Kernel) (f, a, b, c, m, n, k, acc) -> JavaGemm.multiply(f, a, b, c, m, n, k, acc, false)},
            new Object[] {"openblas parallel", (Kernel) (f, a, b, c, m, n, k, acc) -> NativeBlas.multiply(f, a, b, c, m, n, k, acc, true)},
            new Object[] {"openblas serial", (Kernel) (f, a, b, c, m, n, k, acc) -> NativeBlas.multiply(f, a, b, c, m, n, k, acc, false)},
            new Object[] {"Gemm.multiply", (Kernel) Gemm::multiply},
            new Object[] {"Gemm.multiplySerial", (Kernel) Gemm::multiplySerial});

    private static void assumeOpenBlas() {
        org.junit.jupiter.api.Assumptions.assumeTrue(NativeBlas.available(), () -> "OpenBLAS is not available here: " + NativeBlas.unavailableReason());
    }

    /** {@link #KERNELS} without the OpenBLAS ones where OpenBLAS cannot load (openBlasLoadsOnThePlatformItShipsFor says why). */
    private static List<Object[]> kernels() {
        if (NativeBlas.available()) return KERNELS;
        return KERNELS.stream().filter(k -> !((String) k[0]).startsWith("openblas")).toList();
    }

    @Test
    void openBlasLoadsOnThePlatformItShipsFor() {
        boolean onClassPath = getClass().getClassLoader().getResource("org/bytedeco/openblas/global/openblas_nolapack.class") != null;
        org.junit.jupiter.api.Assumptions.assumeTrue(onClassPath,
                "the OpenBLAS presets are not on the class path (the GPU bundle leaves them out): the Java GEMM runs");
        if (Loader.getPlatform().equals("linux-x86_64")) {
            assertTrue(NativeBlas.available(), NativeBlas.unavailableReason());
            if (System.getProperty("lowbit.gemm", "auto").equals("auto")) assertTrue(Gemm.backend().startsWith("OpenBLAS"), Gemm.backend());
        }
    }

    @Test
    void everyKernelMatchesTheFp64ReferenceWithinTheDotProductBound() {
        Random rnd = new Random(1);
        for (int[] s : SHAPES) {
            int m = s[0], n = s[1], k = s[2];
            double[] a = gaussian(rnd, m * k), b = gaussian(rnd, k * n), c0 = gaussian(rnd, m * n);
            double[] product = new double[m * n], bound = new double[m * n];
            reference(a, b, m, n, k, product, bound);
            for (Object[] kernel : kernels()) {
                for (boolean fp64 : new boolean[] {true, false}) {
                    for (boolean accumulate : new boolean[] {false, true}) {
                        double[] c = accumulate ? c0.clone() : nans(m * n);
                        ((Kernel) kernel[1]).multiply(fp64, a, b, c, m, n, k, accumulate);
                        double u = fp64 ? 0x1p-53 : 0x1p-24;
                        for (int i = 0; i < m * n; i++) {
                            double expected = product[i] + (accumulate ? c0[i] : 0);
                            // FP64: the reference's own rounding is as large as the kernel's, hence 2×;
                            // the add into C is one more double rounding: |expected|·2⁻⁵³
                            double tol = (fp64 ? 2 : 1) * (k + 2) * u * bound[i] + 0x1p-52 * Math.abs(expected);
                            if (!(Math.abs(c[i] - expected) <= tol)) {
                                fail(String.format("%s %s %s %d×%d×%d: element %d is %s, expected %s ± %.3g", kernel[0], fp64 ? "fp64" : "fp32",
                                        accumulate ? "accumulate" : "store", m, n, k, i, c[i], expected, tol));
                            }
                        }
                    }
                }
            }
        }
    }

    /** Determinism: the same bits run to run, serial or parallel (OpenBLAS's panel cut depends on the shape only). */
    @Test
    void sameBitsSerialParallelAndRunToRun() {
        assumeOpenBlas();
        assertTrue(NativeBlas.panelCount(37, 1030, 230) > 1 && NativeBlas.panelCount(1100, 70, 120) > 1, "shapes meant to be cut in column and row panels");
        Random rnd = new Random(2);
        for (int[] s : SHAPES) {
            int m = s[0], n = s[1], k = s[2];
            double[] a = gaussian(rnd, m * k), b = gaussian(rnd, k * n), c0 = gaussian(rnd, m * n);
            for (boolean fp64 : new boolean[] {true, false}) {
                double[] serial = c0.clone(), parallel = c0.clone(), again = c0.clone();
                NativeBlas.multiply(fp64, a, b, serial, m, n, k, true, false);
                NativeBlas.multiply(fp64, a, b, parallel, m, n, k, true, true);
                NativeBlas.multiply(fp64, a, b, again, m, n, k, true, true);
                assertArrayEquals(serial, parallel, 0.0, m + "×" + n + "×" + k + " openblas parallel vs serial");
                assertArrayEquals(parallel, again, 0.0, m + "×" + n + "×" + k + " openblas run to run");
                double[] javaPar = c0.clone(), javaSer = c0.clone();
                JavaGemm.multiply(fp64, a, b, javaPar, m, n, k, true, true);
                JavaGemm.multiply(fp64, a, b, javaSer, m, n, k, true, false);
                assertArrayEquals(javaSer, javaPar, 0.0, m + "×" + n + "×" + k + " java parallel vs serial");
            }
        }
    }

    /**
     * Concurrent callers (attention heads call multiplySerial from the common pool) each get their
     * own off-heap operands: products of different sizes run at once, and buffers grow and shrink
     * between calls, without one caller's data leaking into another's result.
     */
    @Test
    void concurrentCallersDoNotShareOperands() {
        assumeOpenBlas();
        int[][] shapes = {{64, 64, 64}, {200, 31, 90}, {17, 300, 40}, {128, 128, 16}, {5, 5, 500}, {256, 64, 256}};
        Random rnd = new Random(3);
        double[][][] ops = new double[shapes.length][][];
        double[][] expected = new double[shapes.length][];
        for (int i = 0; i < shapes.length; i++) {
            int m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
            ops[i] = new double[][] {gaussian(rnd, m * k), gaussian(rnd, k * n)};
            expected[i] = new double[m * n];
            NativeBlas.multiply(false, ops[i][0], ops[i][1], expected[i], m, n, k, false, false);
        }
        IntStream.range(0, 240).parallel().forEach(t -> {
            int i = t % shapes.length, m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
            double[] c = nans(m * n);
            NativeBlas.multiply(false, ops[i][0], ops[i][1], c, m, n, k, false, false); // as Gemm.multiplySerial routes these sizes
            assertArrayEquals(expected[i], c, 0.0, "task " + t + " shape " + Arrays.toString(shapes[i]));
        });
    }

    @Test
    void emptyProducts() {
        for (Object[] kernel : KERNELS.subList(4, 6)) { // the entry points handle empty sizes themselves
            Kernel g = (Kernel) kernel[1];
            double[] c = {1, 2, 3, 4, 5, 6};
            g.multiply(false, new double[0], new double[0], c, 2, 3, 0, true);
            assertArrayEquals(new double[] {1, 2, 3, 4, 5, 6}, c, 0.0, kernel[0] + ": k = 0 adds nothing");
            g.multiply(true, new double[0], new double[0], c, 2, 3, 0, false);
            assertArrayEquals(new double[6], c, 0.0, kernel[0] + ": k = 0 stores zeros");
            double[] untouched = {7};
            g.multiply(false, new double[0], new double[5], untouched, 0, 1, 5, false);
            assertEquals(7, untouched[0], kernel[0] + ": m = 0 writes nothing");
        }
    }

    @Test
    void transposeAndBadInput() {
        double[] a = {1, 2, 3, 4, 5, 6};
        assertArrayEquals(new double[] {1, 4, 2, 5, 3, 6}, Gemm.transpose(a, 2, 3), 0.0);
        IllegalArgumentException shortC = assertThrows(IllegalArgumentException.class, () -> Gemm.multiply(true, a, a, new double[3], 2, 2, 3, false));
        assertTrue(shortC.getMessage().contains("too short"), shortC.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Gemm.multiply(false, a, a, new double[6], 2, 3, -1, false));
        assertThrows(IllegalArgumentException.class, () -> Gemm.multiplySerial(false, a, a, new double[6], -2, 3, 1, false));
    }

    /** {@code product = A·B} in FP64 and {@code bound = |A|·|B|}, the scale of the rounding error of each element. */
    private static void reference(double[] a, double[] b, int m, int n, int k, double[] product, double[] bound) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0, abs = 0;
                for (int p = 0; p < k; p++) {
                    sum += a[i * k + p] * b[p * n + j];
                    abs += Math.abs(a[i * k + p] * b[p * n + j]);
                }
                product[i * n + j] = sum;
                bound[i * n + j] = abs;
            }
        }
    }

    private static double[] gaussian(Random rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian();
        return v;
    }

    private static double[] nans(int n) {
        double[] v = new double[n];
        Arrays.fill(v, Double.NaN);
        return v;
    }
}
