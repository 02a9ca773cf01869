package lowbit.calibrate;

import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.openblas.global.openblas_nolapack;

/**
 * {@link Gemm}'s product on OpenBLAS (the JavaCPP presets {@code org.bytedeco:openblas}, natives in
 * the jar): {@code cblas_sgemm} in FP32 mode, {@code cblas_dgemm} in FP64 mode. Same contract as
 * {@link Gemm#multiply}; the caller has checked the operands.
 *
 * <p>Numerics. FP32: A and B are rounded to {@code float} (the same rounding as {@link JavaGemm}),
 * sgemm accumulates in {@code float} (FMA, its own blocked summation order), and the product comes
 * back as {@code float} and is stored into, or added to, the {@code double} C (beta = 0: the old C
 * never passes through {@code float}). The result therefore differs from the Java kernel only by
 * float rounding of a different summation order (relative error ~1e-7·√k either way), not in
 * accuracy class. FP64: dgemm on the doubles as they are.
 *
 * <p>Threads. OpenBLAS is made single-threaded once, at load (a process-wide setting); the
 * parallelism comes from the common pool. A large product is cut into panels of C (rows, or columns
 * when C is short and wide), each panel one single-threaded sgemm call followed by its own
 * conversion back to double. So there is one set of worker threads only: OpenBLAS's own threads
 * never compete with the pool, and callers that are already parallel ({@link Gemm#multiplySerial}
 * from attention heads) call sgemm on their own thread.
 *
 * <p>Determinism. The panel cut is a function of the shape alone ({@link Panels}), and each panel
 * is one single-threaded call, so the bits of C are the same run to run, serial or parallel, for
 * any number of threads. They can change with the CPU: OpenBLAS picks its kernel at load from the
 * CPU it finds (DYNAMIC_ARCH); and they differ from {@link JavaGemm}'s in the last bits (another
 * summation order).
 *
 * <p>Memory. Operands are converted into off-heap buffers that each calling thread keeps, grown to
 * the largest product it has run (no per-call allocation, no page faults on fresh memory); the
 * conversions go through a small per-thread staging array.
 */
final class NativeBlas {
    private static final int ROW_MAJOR = 101, NO_TRANS = 111; // CBLAS_ORDER, CBLAS_TRANSPOSE
    /** Elements converted per staging step: 256 KiB of float, 512 KiB of double (L2-resident). */
    private static final int STAGE = 1 << 16;
    /** Products with fewer multiply-adds than this are one call: too small to pay for a fork. */
    static final long PANEL_MIN_WORK = 1L << 23;
    /** Panels are about this wide (each panel repacks the operand they share)... */
    private static final int PANEL = 256;
    /** ... and at most this many (work for up to 16 threads; at 4096 tokens: 16 panels of 256 rows). */
    private static final int MAX_PANELS = 16;

    private static final ThreadLocal<float[]> STAGING32 = ThreadLocal.withInitial(() -> new float[STAGE]);
    private static final ThreadLocal<double[]> STAGING64 = ThreadLocal.withInitial(() -> new double[STAGE]);

    private NativeBlas() {}

    /** Loads OpenBLAS once, on first use. */
    private static final class Library {
        static final Throwable FAILURE = load();

        private static Throwable load() {
            try {
                Loader.load(openblas_nolapack.class);
                openblas_nolapack.blas_set_num_threads(1);
                return null;
            } catch (Throwable t) { // UnsatisfiedLinkError, NoClassDefFoundError (jar absent), ...
                return t;
            }
        }
    }

    /** Whether OpenBLAS loaded (the first call loads it). */
    static boolean available() {
        return Library.FAILURE == null;
    }

    /** Why OpenBLAS did not load, or null when it did. */
    static String unavailableReason() {
        Throwable t = Library.FAILURE;
        return t == null ? null : "OpenBLAS could not be loaded for platform " + Loader.getPlatform() + ": " + t;
    }

    /** The library's name and version, e.g. "OpenBLAS 0.3.31". */
    static String version() {
        return openblas_nolapack.OPENBLAS_VERSION.trim();
    }

    /** How many panels (single-threaded calls) {@code m×k · k×n} is cut into. */
    static int panelCount(int m, int n, int k) {
        return Panels.of(m, n, k).count();
    }

    /** {@code C (+)= A·B} on OpenBLAS; {@code parallel}: cut into panels run on the common pool. */
    static void multiply(boolean fp64, double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate, boolean parallel) {
        if (!available()) throw new IllegalStateException(unavailableReason(), Library.FAILURE);
        if (m == 0 || n == 0 || k == 0) throw new IllegalArgumentException("empty product " + m + "×" + k + " · " + k + "×" + n + " has no BLAS call");
        Operands ops = Operands.acquire();
        try {
            Panels panels = Panels.of(m, n, k);
            if (fp64) {
                ops.run64(a, b, c, m, n, k, accumulate, panels, parallel);
            } else {
                ops.run32(a, b, c, m, n, k, accumulate, panels, parallel);
            }
        } finally {
            ops.release();
        }
    }

    /**
     * How C is cut into panels: along rows when it has at least as many rows as columns, else along
     * columns, into {@code extent / PANEL} panels (at most {@link #MAX_PANELS}) when the product
     * has at least {@link #PANEL_MIN_WORK} multiply-adds, else one. The cut depends on the shape
     * only, never on the number of threads or on {@code parallel}, which only says whether the
     * panels run on the pool or one after the other: so the bits of C are the same either way.
     * Panel {@code t} covers rows {@code [r0(t), r1(t))} and columns {@code [j0(t), j1(t))}.
     */
    private record Panels(int m, int n, boolean byRows, int count) {
        static Panels of(int m, int n, int k) {
            boolean byRows = m >= n;
            int extent = byRows ? m : n;
            int count = (long) m * n * k < PANEL_MIN_WORK ? 1 : Math.max(1, Math.min(MAX_PANELS, extent / PANEL));
            return new Panels(m, n, byRows, count);
        }

        int r0(int t) {
            return byRows ? cut(m, t) : 0;
        }

        int r1(int t) {
            return byRows ? cut(m, t + 1) : m;
        }

        int j0(int t) {
            return byRows ? 0 : cut(n, t);
        }

        int j1(int t) {
            return byRows ? n : cut(n, t + 1);
        }

        private int cut(int extent, int t) {
            return (int) ((long) extent * t / count);
        }

        void forEach(boolean parallel, IntConsumer panel) {
            IntStream s = IntStream.range(0, count);
            (parallel && count > 1 ? s.parallel() : s).forEach(panel);
        }
    }

    /** The off-heap operands of one calling thread, grown on demand and kept for the thread's life. */
    private static final class Operands {
        private static final ThreadLocal<Operands> MINE = ThreadLocal.withInitial(Operands::new);

        private FloatPointer a32, b32, c32;
        private DoublePointer a64, b64, c64;
        private boolean inUse, temporary;

        /**
         * This thread's buffers; a re-entrant call on a thread whose buffers are in use (a pool
         * thread that runs another task while it waits) gets a temporary set.
         */
        static Operands acquire() {
            Operands o = MINE.get();
            if (o.inUse) {
                o = new Operands();
                o.temporary = true;
            }
            o.inUse = true;
            return o;
        }

        void release() {
            inUse = false;
            if (temporary) {
                for (Pointer p : new Pointer[] {a32, b32, c32, a64, b64, c64}) {
                    if (p != null) p.close();
                }
            }
        }

        void run32(double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate, Panels panels, boolean parallel) {
            a32 = grow(a32, (long) m * k);
            b32 = grow(b32, (long) k * n);
            c32 = grow(c32, (long) m * n);
            FloatPointer ap = a32, bp = b32, cp = c32;
            FloatBuffer cView = cp.asBuffer();
            toFloat(a, ap.asBuffer(), m * k, parallel);
            toFloat(b, bp.asBuffer(), k * n, parallel);
            panels.forEach(parallel, t -> {
                int r0 = panels.r0(t), r1 = panels.r1(t), j0 = panels.j0(t), j1 = panels.j1(t);
                openblas_nolapack.cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, r1 - r0, j1 - j0, k, 1f, ap.getPointer((long) r0 * k), k,
                        bp.getPointer(j0), n, 0f, cp.getPointer((long) r0 * n + j0), n);
                if (j0 == 0 && j1 == n) {
                    fromFloat(cView, r0 * n, c, (r1 - r0) * n, accumulate);
                } else {
                    for (int r = r0; r < r1; r++) fromFloat(cView, r * n + j0, c, j1 - j0, accumulate);
                }
            });
        }

        void run64(double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate, Panels panels, boolean parallel) {
            a64 = grow(a64, (long) m * k);
            b64 = grow(b64, (long) k * n);
            c64 = grow(c64, (long) m * n);
            DoublePointer ap = a64, bp = b64, cp = c64;
            DoubleBuffer cView = cp.asBuffer();
            copyIn(a, ap.asBuffer(), m * k, parallel);
            copyIn(b, bp.asBuffer(), k * n, parallel);
            panels.forEach(parallel, t -> {
                int r0 = panels.r0(t), r1 = panels.r1(t), j0 = panels.j0(t), j1 = panels.j1(t);
                openblas_nolapack.cblas_dgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, r1 - r0, j1 - j0, k, 1.0, ap.getPointer((long) r0 * k), k,
                        bp.getPointer(j0), n, 0.0, cp.getPointer((long) r0 * n + j0), n);
                if (j0 == 0 && j1 == n) {
                    copyOut(cView, r0 * n, c, (r1 - r0) * n, accumulate);
                } else {
                    for (int r = r0; r < r1; r++) copyOut(cView, r * n + j0, c, j1 - j0, accumulate);
                }
            });
        }

        private static FloatPointer grow(FloatPointer p, long size) {
            if (p != null && p.capacity() >= size) return p;
            if (p != null) p.close();
            return new FloatPointer(size);
        }

        private static DoublePointer grow(DoublePointer p, long size) {
            if (p != null && p.capacity() >= size) return p;
            if (p != null) p.close();
            return new DoublePointer(size);
        }
    }

    /** {@code dst[0, len) = (float) src[0, len)}, in staging steps, on the pool when parallel. */
    private static void toFloat(double[] src, FloatBuffer dst, int len, boolean parallel) {
        steps(len, parallel).forEach(step -> {
            int off = step * STAGE, l = Math.min(STAGE, len - off);
            float[] s = STAGING32.get();
            for (int i = 0; i < l; i++) s[i] = (float) src[off + i];
            dst.put(off, s, 0, l);
        });
    }

    /** {@code dst[dstOff, +len) (+)= src[srcOff, +len)}, widening float to double. */
    private static void fromFloat(FloatBuffer src, int srcOff, double[] dst, int len, boolean accumulate) {
        float[] s = STAGING32.get();
        for (int done = 0; done < len; done += STAGE) {
            int l = Math.min(STAGE, len - done), d = srcOff + done;
            src.get(d, s, 0, l);
            if (accumulate) {
                for (int i = 0; i < l; i++) dst[d + i] += s[i];
            } else {
                for (int i = 0; i < l; i++) dst[d + i] = s[i];
            }
        }
    }

    private static void copyIn(double[] src, DoubleBuffer dst, int len, boolean parallel) {
        steps(len, parallel).forEach(step -> {
            int off = step * STAGE;
            dst.put(off, src, off, Math.min(STAGE, len - off));
        });
    }

    private static void copyOut(DoubleBuffer src, int srcOff, double[] dst, int len, boolean accumulate) {
        if (!accumulate) {
            src.get(srcOff, dst, srcOff, len);
            return;
        }
        double[] s = STAGING64.get();
        for (int done = 0; done < len; done += STAGE) {
            int l = Math.min(STAGE, len - done), d = srcOff + done;
            src.get(d, s, 0, l);
            for (int i = 0; i < l; i++) dst[d + i] += s[i];
        }
    }

    private static IntStream steps(int len, boolean parallel) {
        IntStream s = IntStream.range(0, (len + STAGE - 1) / STAGE);
        return parallel && len > STAGE ? s.parallel() : s;
    }
}
