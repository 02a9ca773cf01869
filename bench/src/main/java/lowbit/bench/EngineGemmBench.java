package lowbit.bench;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.ForkJoinPool;

/**
 * GFLOP/s of the calibration engine's two GEMM kernels — the Java kernel ({@code JavaGemm}) and
 * OpenBLAS ({@code NativeBlas}) — at the engine's real shapes (SmolLM2-135M: hidden 576, MLP 1536,
 * k/v 192, head 64; 4096 tokens), forward and backward, FP32 mode (and FP64 for a few), plus the
 * small-size sweep that sets {@code Gemm}'s cutoffs. Each row times both kernels in the same JVM,
 * interleaved, and prints the median and the spread (min-max) of the repetitions; the machine may be
 * shared, so the spread is part of the result.
 *
 * <p>The kernels are package-private in {@code lowbit.calibrate} (not public API); this bench
 * reaches them by a private lookup, which the class path (one unnamed module) allows.
 *
 * <pre>
 *   java -cp java/target/classes:java/target/lib/*:bench/target/classes lowbit.bench.EngineGemmBench [SECONDS_PER_CELL]
 * </pre>
 */
public final class EngineGemmBench {
    private static final MethodType KERNEL = MethodType.methodType(void.class, boolean.class, double[].class, double[].class, double[].class, int.class,
            int.class, int.class, boolean.class, boolean.class);

    private final MethodHandle javaKernel;
    private final MethodHandle blas;
    private final MethodHandle panels;
    private final MethodHandle cuda; // null without a GPU
    private final double seconds;

    private EngineGemmBench(double seconds) throws ReflectiveOperationException {
        this.javaKernel = kernel("lowbit.calibrate.JavaGemm");
        this.blas = kernel("lowbit.calibrate.NativeBlas");
        this.seconds = seconds;
        Class<?> c = Class.forName("lowbit.calibrate.NativeBlas");
        this.panels = MethodHandles.privateLookupIn(c, MethodHandles.lookup()).findStatic(c, "panelCount", MethodType.methodType(int.class, int.class, int.class, int.class));
        this.cuda = cudaKernel();
    }

    /** CudaBlas.multiply adapted to the kernels' signature (no fp64 or parallel flags), or null without a GPU. */
    private static MethodHandle cudaKernel() throws ReflectiveOperationException {
        Class<?> c = Class.forName("lowbit.calibrate.CudaBlas");
        MethodHandles.Lookup l = MethodHandles.privateLookupIn(c, MethodHandles.lookup());
        MethodHandle available = l.findStatic(c, "available", MethodType.methodType(boolean.class));
        try {
            if (!(boolean) available.invokeExact()) {
                System.out.println("cuBLAS column left out: " + (String) l.findStatic(c, "unavailableReason", MethodType.methodType(String.class)).invokeExact());
                return null;
            }
        } catch (Throwable t) {
            System.out.println("cuBLAS column left out: " + t);
            return null;
        }
        MethodHandle h = l.findStatic(c, "multiply", MethodType.methodType(void.class, double[].class, double[].class, double[].class, int.class, int.class,
                int.class, boolean.class));
        h = MethodHandles.dropArguments(h, 0, boolean.class);
        return MethodHandles.dropArguments(h, 8, boolean.class);
    }

    private static MethodHandle kernel(String className) throws ReflectiveOperationException {
        Class<?> c = Class.forName(className);
        return MethodHandles.privateLookupIn(c, MethodHandles.lookup()).findStatic(c, "multiply", KERNEL);
    }

    public static void main(String[] args) throws Throwable {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 1.5;
        EngineGemmBench b = new EngineGemmBench(seconds);
        Class<?> gemm = Class.forName("lowbit.calibrate.Gemm");
        MethodHandle backend = MethodHandles.privateLookupIn(gemm, MethodHandles.lookup()).findStatic(gemm, "backend", MethodType.methodType(String.class));
        System.out.printf(Locale.ROOT, "Gemm backend: %s; %d cores, common pool parallelism %d%n", (String) backend.invokeExact(),
                Runtime.getRuntime().availableProcessors(), ForkJoinPool.getCommonPoolParallelism());
        b.engineShapes();
        b.cutoffs();
    }

    /** The products of one LlamaBlock's linear layers at 4096 tokens, forward and backward, and of attention. */
    private void engineShapes() throws Throwable {
        System.out.printf(Locale.ROOT, "%n%-34s %18s %18s %18s %7s %18s %8s%n", "FP32 product (m x n x k)", "Java GFLOP/s", "OpenBLAS GFLOP/s", "OpenBLAS 1 thread", "ratio",
                "cuBLAS+copies", "vs BLAS");
        Object[][] rows = {
            {"fwd q/o: x.Wt 4096x576x576", 4096, 576, 576},
            {"fwd k/v: x.Wt 4096x192x576", 4096, 192, 576},
            {"fwd gate/up: x.Wt 4096x1536x576", 4096, 1536, 576},
            {"fwd down: x.Wt 4096x576x1536", 4096, 576, 1536},
            {"bwd dx gate/up: dy.W 4096x576x1536", 4096, 576, 1536},
            {"bwd dx down: dy.W 4096x1536x576", 4096, 1536, 576},
            {"bwd dW gate/up: dyT.x 1536x576x4096", 1536, 576, 4096},
            {"bwd dW down: dyT.x 576x1536x4096", 576, 1536, 4096},
            {"bwd dW q/o: dyT.x 576x576x4096", 576, 576, 4096},
            {"bwd dW k/v: dyT.x 192x576x4096", 192, 576, 4096},
            {"attn scores/head: q.kT 256x256x64", 256, 256, 64},
            {"attn out/head: p.v 256x64x256", 256, 64, 256},
            {"Kronecker: 24x(4096*24)x24", 24, 4096 * 24, 24},
        };
        for (Object[] r : rows) {
            int m = (int) r[1], n = (int) r[2], k = (int) r[3];
            Cell j = time(javaKernel, false, m, n, k, true);
            Cell p = time(blas, false, m, n, k, true);
            Cell s = time(blas, false, m, n, k, false);
            Cell g = cuda == null ? null : time(cuda, false, m, n, k, true);
            System.out.printf(Locale.ROOT, "%-34s %18s %18s %18s %6.1fx %18s %8s%n", r[0], j, p, s, p.median / j.median, g == null ? "-" : g.toString(),
                    g == null ? "-" : String.format(Locale.ROOT, "%.2fx", g.median / p.median));
        }
        System.out.printf(Locale.ROOT, "%n%-34s %18s %18s %18s %7s%n", "FP64 product (m x n x k)", "Java GFLOP/s", "OpenBLAS GFLOP/s", "OpenBLAS 1 thread", "ratio");
        for (int[] s : new int[][] {{4096, 576, 576}, {576, 576, 4096}, {64, 64, 64}}) {
            Cell j = time(javaKernel, true, s[0], s[1], s[2], true);
            Cell p = time(blas, true, s[0], s[1], s[2], true);
            Cell one = time(blas, true, s[0], s[1], s[2], false);
            System.out.printf(Locale.ROOT, "%-34s %18s %18s %18s %6.1fx%n", s[0] + "x" + s[1] + "x" + s[2], j, p, one, p.median / j.median);
        }
    }

    /** Where OpenBLAS starts to beat the Java kernel (one thread each), and where running its panels on the pool starts to pay. */
    private void cutoffs() throws Throwable {
        System.out.printf(Locale.ROOT, "%nsmall products, one thread each (microseconds per call, median)%n%-16s %10s %10s %10s%n", "m x n x k", "m*n*k", "Java", "OpenBLAS");
        int[][] small = {{1, 1, 1}, {1, 64, 1}, {4, 4, 4}, {8, 8, 8}, {16, 16, 16}, {24, 24, 24}, {32, 32, 32}, {1, 576, 576}, {48, 48, 48}, {64, 64, 64},
            {96, 96, 96}, {128, 128, 128}};
        for (int[] s : small) {
            Cell j = time(javaKernel, false, s[0], s[1], s[2], false);
            Cell b = time(blas, false, s[0], s[1], s[2], false);
            long work = (long) s[0] * s[1] * s[2];
            System.out.printf(Locale.ROOT, "%-16s %10d %10.2f %10.2f%n", s[0] + "x" + s[1] + "x" + s[2], work, 2e-3 * work / j.median, 2e-3 * work / b.median);
        }
        System.out.printf(Locale.ROOT, "%nOpenBLAS, serial vs parallel (GFLOP/s, median)%n%-16s %10s %10s %10s %7s%n", "m x n x k", "m*n*k", "serial", "parallel", "panels");
        int[][] mid = {{128, 128, 128}, {256, 256, 64}, {512, 512, 16}, {512, 512, 32}, {512, 128, 128}, {512, 256, 256}, {512, 512, 512}, {1024, 576, 576},
            {2048, 576, 576}};
        for (int[] s : mid) {
            Cell one = time(blas, false, s[0], s[1], s[2], false);
            Cell par = time(blas, false, s[0], s[1], s[2], true);
            System.out.printf(Locale.ROOT, "%-16s %10d %10.1f %10.1f %7d%n", s[0] + "x" + s[1] + "x" + s[2], (long) s[0] * s[1] * s[2], one.median, par.median,
                    (int) panels.invokeExact(s[0], s[1], s[2]));
        }
    }

    /** GFLOP/s of {@code kernel} on random operands, repeated for about {@link #seconds} after a warm-up. */
    private Cell time(MethodHandle kernel, boolean fp64, int m, int n, int k, boolean parallel) throws Throwable {
        Random rnd = new Random(m * 31L + n * 17L + k);
        double[] a = random(rnd, m * k), b = random(rnd, k * n), c = new double[m * n];
        double flop = 2.0 * m * n * k;
        long warm = System.nanoTime() + (long) (0.3 * seconds * 1e9);
        int batch = 1;
        while (System.nanoTime() < warm) { // also grows the batch to about a millisecond
            long t0 = System.nanoTime();
            for (int i = 0; i < batch; i++) kernel.invokeExact(fp64, a, b, c, m, n, k, false, parallel);
            if (System.nanoTime() - t0 < 1_000_000) batch *= 2;
        }
        double[] rates = new double[64];
        int reps = 0;
        long end = System.nanoTime() + (long) (seconds * 1e9);
        while (reps < rates.length && (reps < 3 || System.nanoTime() < end)) {
            long t0 = System.nanoTime();
            for (int i = 0; i < batch; i++) kernel.invokeExact(fp64, a, b, c, m, n, k, false, parallel);
            rates[reps++] = flop * batch / (System.nanoTime() - t0);
        }
        double[] r = Arrays.copyOf(rates, reps);
        Arrays.sort(r);
        return new Cell(r[reps / 2], r[0], r[reps - 1]);
    }

    private static double[] random(Random rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian();
        return v;
    }

    /** GFLOP/s: median, slowest and fastest repetition. */
    private record Cell(double median, double min, double max) {
        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%6.1f (%5.1f-%5.1f)", median, min, max);
        }
    }
}
