package lowbit.calibrate;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.IntStream;
import lowbit.Backend;
import lowbit.Context;
import lowbit.DType;
import lowbit.Lowbit;
import lowbit.Tensor;

/**
 * {@link Gemm}'s FP32 product on a CUDA GPU: cuBLAS through lowbit's own dense GEMM ({@link
 * Context#denseGemm}, {@code cublasGemmEx} with FP32 compute, no TF32). Same contract as {@link
 * Gemm#multiply} in FP32 mode; FP64 products (gradient checks) never come here.
 *
 * <p>Numerics as {@link NativeBlas}'s FP32 mode: A and B rounded to {@code float}, products and sums
 * in {@code float} (cuBLAS's own blocking order), the result widened and stored into, or added to,
 * the {@code double} C on the host (the old C never passes through {@code float}). Deterministic run
 * to run on one GPU type (one stream, cuBLAS's default algorithm for the shape).
 *
 * <p>Cost model. The engine keeps its tensors in Java arrays, so every product moves A and B to the
 * device and C back (pageable copies); at the engine's shapes the transfers and the double/float
 * conversions, not the GPU's arithmetic, are most of the time. Only products of at least {@link
 * Gemm}'s CUDA threshold come here. One process-wide CUDA context; products run one at a time (the
 * copies share one PCIe link anyway). Device and host buffers are kept per operand shape (the
 * engine's shapes repeat every step), at most {@link #MAX_SLOTS} of them, least recently used
 * evicted.
 */
final class CudaBlas {
    private static final int MAX_SLOTS = 24;

    private CudaBlas() {}

    private static final class Device {
        static final Context CTX;
        static final String FAILURE;

        static {
            Context ctx = null;
            String failure = null;
            try {
                if (Lowbit.cudaDeviceCount() < 1) {
                    failure = "no CUDA device (" + Lowbit.buildInfo() + ")";
                } else {
                    ctx = Context.open(Backend.CUDA);
                    try (Tensor a = ctx.allocate(DType.F32, 1, 1); Tensor c = ctx.allocate(DType.F32, 1, 1)) {
                        ctx.denseGemm(a, a, true, c, false); // loads cuBLAS: fails here when it is missing
                    }
                }
            } catch (RuntimeException | LinkageError e) {
                failure = "the CUDA context or cuBLAS is unavailable: " + e.getMessage();
                if (ctx != null) ctx.close();
                ctx = null;
            }
            CTX = ctx;
            FAILURE = failure;
        }
    }

    /** A device tensor and a host array of one shape. */
    private record Slot(Tensor device, float[] host) {}

    private static final Map<Long, Slot> SLOTS = new LinkedHashMap<>(32, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, Slot> eldest) {
            if (size() <= MAX_SLOTS) return false;
            eldest.getValue().device().close();
            return true;
        }
    };

    /** Whether a CUDA device and cuBLAS are usable (the first call opens the context). */
    static boolean available() {
        return Device.FAILURE == null;
    }

    /** Why not, or null. */
    static String unavailableReason() {
        return Device.FAILURE;
    }

    static String describe() {
        return available() ? "cuBLAS FP32 on " + Device.CTX : "no cuBLAS (" + Device.FAILURE + ")";
    }

    /** {@code C (+)= A·B}, FP32, on the GPU. */
    static synchronized void multiply(double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate) {
        if (!available()) throw new IllegalStateException(Device.FAILURE);
        Context ctx = Device.CTX;
        Slot sa = slot(ctx, 0, m, k), sb = slot(ctx, 1, k, n), sc = slot(ctx, 2, m, n);
        toFloat(a, sa.host(), m * k);
        toFloat(b, sb.host(), k * n);
        sa.device().copyFrom(sa.host());
        sb.device().copyFrom(sb.host());
        ctx.denseGemm(sa.device(), sb.device(), false, sc.device(), false);
        sc.device().copyTo(sc.host());
        float[] h = sc.host();
        IntStream.range(0, m).parallel().forEach(r -> {
            int o = r * n;
            if (accumulate) {
                for (int j = o; j < o + n; j++) c[j] += h[j];
            } else {
                for (int j = o; j < o + n; j++) c[j] = h[j];
            }
        });
    }

    private static Slot slot(Context ctx, int role, int rows, int cols) {
        long key = ((long) role << 62) | ((long) rows << 31) | cols;
        Slot s = SLOTS.get(key);
        if (s == null) {
            s = new Slot(ctx.allocate(DType.F32, rows, cols), new float[rows * cols]);
            SLOTS.put(key, s);
        }
        return s;
    }

    private static void toFloat(double[] src, float[] dst, int len) {
        int chunk = 1 << 16;
        IntStream.range(0, (len + chunk - 1) / chunk).parallel().forEach(t -> {
            int end = Math.min(len, (t + 1) * chunk);
            for (int i = t * chunk; i < end; i++) dst[i] = (float) src[i];
        });
    }
}
