package lowbit.calibrate;

import java.util.Arrays;
import java.util.Locale;
import lowbit.Lowbit;

/**
 * The matrix product of the engine, {@code C (+)= A·B} with row-major {@code A [m][k]}, {@code B
 * [k][n]}, {@code C [m][n]}, stored as {@code double}. In FP32 mode the operands are rounded to
 * {@code float} and the product is computed and accumulated in {@code float} (the fast mode of
 * calibration); in FP64 mode everything stays {@code double} (gradient checks).
 *
 * <p>The single entry point for both kernels: products of at least {@link #NATIVE_MIN_WORK}
 * multiply-adds run on OpenBLAS ({@link NativeBlas}: ~10× the Java kernel at the engine's shapes),
 * smaller ones, and all of them when OpenBLAS cannot load (logged once, with the reason), on the
 * Java kernel ({@link JavaGemm}). On a host with a CUDA GPU, FP32 products of at least {@link
 * #CUDA_MIN_WORK} multiply-adds run on cuBLAS ({@link CudaBlas}; the operands cross PCIe every call,
 * which only pays on large products). The system property {@code lowbit.gemm} overrides the choice:
 * {@code java} (always the Java kernel), {@code native} (OpenBLAS for every non-empty product, never
 * the GPU; an error when it cannot load), {@code cuda} (cuBLAS for every FP32 product of at least
 * {@link #NATIVE_MIN_WORK}; an error without a GPU), {@code auto} (the default).
 *
 * <p>Determinism: each kernel gives the same bits run to run, serial or parallel, for any thread
 * count; the two kernels differ from each other in the last float bits (different summation
 * orders), so results do change with the system property or when OpenBLAS is missing, and
 * OpenBLAS's may change with the CPU type (see {@link NativeBlas}).
 */
final class Gemm {
    /** Java kernel: products smaller than this run on the calling thread. */
    private static final long JAVA_PARALLEL_WORK = 1L << 18;
    /**
     * Products (m·n·k) below this run on the Java kernel: a native call costs about a microsecond of
     * JNI, thread-local lookup and conversion setup, which the Java kernel beats on tiny products.
     */
    static final long NATIVE_MIN_WORK = 1L << 12;
    /** Operands longer than this stay on the Java kernel (off-heap views are indexed by int bytes). */
    private static final long NATIVE_MAX_ELEMENTS = Integer.MAX_VALUE / Double.BYTES;
    /**
     * FP32 products (m·n·k) from this size run on cuBLAS when a GPU is present (auto): below it the
     * PCIe copies and conversions cost more than OpenBLAS's arithmetic on the host's cores.
     */
    static final long CUDA_MIN_WORK = 1L << 26;

    private enum Choice {
        AUTO,
        JAVA,
        NATIVE,
        CUDA
    }

    private static final Choice CHOICE = choice();
    private static final boolean NATIVE = useNative();
    private static final boolean GPU = useCuda();

    private Gemm() {}

    /** {@code C = A·B} ({@code accumulate}: {@code C += A·B}), parallel on the common pool when large enough. */
    static void multiply(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate) {
        run(fp64, a, b, c, m, n, k, accumulate, true);
    }

    /** Like {@link #multiply} but always on the calling thread (for callers that are already parallel). */
    static void multiplySerial(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate) {
        run(fp64, a, b, c, m, n, k, accumulate, false);
    }

    /** Which kernel runs products of {@link #NATIVE_MIN_WORK} and more, for reports. */
    static String backend() {
        String gpu = GPU ? "; FP32 products from " + (CHOICE == Choice.CUDA ? NATIVE_MIN_WORK : CUDA_MIN_WORK) + " multiply-adds on " + CudaBlas.describe() : "";
        return cpuBackend() + gpu;
    }

    private static String cpuBackend() {
        if (NATIVE) return NativeBlas.version() + " (single-threaded calls, panels on the common pool), Java kernel below " + NATIVE_MIN_WORK + " multiply-adds";
        return "Java kernel" + (CHOICE == Choice.JAVA ? " (lowbit.gemm=java)" : " (" + NativeBlas.unavailableReason() + ")");
    }

    /** The transpose of row-major {@code a [rows][cols]}, i.e. {@code [cols][rows]}. */
    static double[] transpose(double[] a, int rows, int cols) {
        double[] t = new double[rows * cols];
        for (int r0 = 0; r0 < rows; r0 += 32) {
            int r1 = Math.min(rows, r0 + 32);
            for (int c0 = 0; c0 < cols; c0 += 32) {
                int c1 = Math.min(cols, c0 + 32);
                for (int r = r0; r < r1; r++) {
                    for (int c = c0; c < c1; c++) t[c * rows + r] = a[r * cols + c];
                }
            }
        }
        return t;
    }

    private static void run(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate, boolean mayParallel) {
        if (m < 0 || n < 0 || k < 0) throw new IllegalArgumentException("negative gemm size " + m + "×" + k + " · " + k + "×" + n);
        if (a.length < (long) m * k || b.length < (long) k * n || c.length < (long) m * n) {
            throw new IllegalArgumentException("gemm operands too short for " + m + "×" + k + " · " + k + "×" + n);
        }
        if (m == 0 || n == 0) return;
        if (k == 0) { // an empty sum
            if (!accumulate) Arrays.fill(c, 0, m * n, 0.0);
            return;
        }
        long work = (long) m * n * k;
        boolean large = Math.max((long) m * n, Math.max((long) m * k, (long) k * n)) > NATIVE_MAX_ELEMENTS;
        if (GPU && !fp64 && !large && work >= (CHOICE == Choice.CUDA ? NATIVE_MIN_WORK : CUDA_MIN_WORK)) {
            CudaBlas.multiply(a, b, c, m, n, k, accumulate);
        } else if (NATIVE && (work >= NATIVE_MIN_WORK || CHOICE == Choice.NATIVE) && !large) {
            NativeBlas.multiply(fp64, a, b, c, m, n, k, accumulate, mayParallel);
        } else {
            JavaGemm.multiply(fp64, a, b, c, m, n, k, accumulate, mayParallel && work >= JAVA_PARALLEL_WORK);
        }
    }

    private static Choice choice() {
        String p = System.getProperty("lowbit.gemm", "auto").trim().toUpperCase(Locale.ROOT);
        try {
            return Choice.valueOf(p);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("system property lowbit.gemm must be auto, java, native or cuda, got '" + p.toLowerCase(Locale.ROOT) + "'");
        }
    }

    private static boolean useCuda() {
        if (CHOICE == Choice.JAVA || CHOICE == Choice.NATIVE) return false;
        if (CHOICE == Choice.CUDA) {
            if (!CudaBlas.available()) throw new IllegalStateException("lowbit.gemm=cuda but " + CudaBlas.unavailableReason());
            return true;
        }
        try {
            return Lowbit.cudaDeviceCount() > 0 && CudaBlas.available();
        } catch (RuntimeException | LinkageError e) { // liblowbit itself missing: the CPU kernels still work
            return false;
        }
    }

    private static boolean useNative() {
        if (CHOICE == Choice.JAVA) return false;
        if (NativeBlas.available()) return true;
        if (CHOICE == Choice.NATIVE) throw new IllegalStateException("lowbit.gemm=native but " + NativeBlas.unavailableReason());
        System.getLogger(Gemm.class.getName()).log(System.Logger.Level.WARNING,
                "calibration GEMMs run on the Java kernel (about 10x slower): " + NativeBlas.unavailableReason());
        return false;
    }
}
