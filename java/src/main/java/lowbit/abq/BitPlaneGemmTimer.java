package lowbit.abq;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Random;
import lowbit.BitPlaneTensor;
import lowbit.Context;
import lowbit.DType;
import lowbit.Tensor;

/**
 * Measures {@code lowbit_bitplane_gemm} on a context. For an (N, K, width, M) it uploads random
 * weight codes of the width's planes (unsigned, with zero points, as {@link AbqLinear} stores
 * them), quantizes random M × K activations to the width's activation planes once, runs the GEMM
 * (F32 output with the scale epilogue, as a layer does) once to warm up and then {@code runs}
 * times, each bracketed by {@link Context#synchronize} (so a CUDA launch is timed to completion),
 * and keeps the <b>median</b>. The per-token activation quantization and the uploads are not timed:
 * the widths' costs differ by the GEMM, whose time depends on the operands' planes and not on the
 * code values.
 *
 * <p>{@link #seconds(int, int, List, List)} measures all the (width, M) of one (N, K) together,
 * run by run in turn (run 1 of each, then run 2 of each, ...), so that a burst of load on a shared
 * machine lands on every candidate rather than on one. Results are cached per (N, K, width, M):
 * layers of one shape are timed once. Thread-safe (one measurement at a time).
 */
public final class BitPlaneGemmTimer implements GemmTimer {
    private record Key(int n, int k, AbqWidth width, int m) {}

    private final Context ctx;
    private final int runs;
    private final Map<Key, Double> cache = new HashMap<>();
    private int measurements;

    /** {@code runs}: timed runs per (N, K, width, M) after one warm-up run, at least 1. */
    public BitPlaneGemmTimer(Context ctx, int runs) {
        this.ctx = Objects.requireNonNull(ctx, "a context to time the bit-plane GEMM on is required");
        if (runs < 1) throw new IllegalArgumentException("timing runs must be >= 1, got " + runs);
        this.runs = runs;
    }

    public int runs() {
        return runs;
    }

    /** Distinct (N, K, width, M) measured so far (each cached afterwards). */
    public synchronized int measurements() {
        return measurements;
    }

    @Override
    public synchronized double seconds(int n, int k, AbqWidth width, int m) {
        return seconds(n, k, List.of(Objects.requireNonNull(width, "width")), List.of(m))[0][0];
    }

    @Override
    public synchronized double[][] seconds(int n, int k, List<AbqWidth> widths, List<Integer> ms) {
        if (n < 1 || k < 1) throw new IllegalArgumentException("GEMM shape must be positive, got N=" + n + ", K=" + k);
        List<Key> missing = new ArrayList<>();
        for (AbqWidth w : widths) {
            for (Integer m : ms) {
                Objects.requireNonNull(w, "width");
                if (m == null || m < 1) throw new IllegalArgumentException("GEMM tokens M must be >= 1, got " + m);
                Key key = new Key(n, k, w, m);
                if (!cache.containsKey(key) && !missing.contains(key)) missing.add(key);
            }
        }
        if (!missing.isEmpty()) measure(n, k, missing);
        double[][] t = new double[widths.size()][ms.size()];
        for (int i = 0; i < widths.size(); i++) {
            for (int j = 0; j < ms.size(); j++) t[i][j] = cache.get(new Key(n, k, widths.get(i), ms.get(j)));
        }
        return t;
    }

    /** One prepared GEMM: operands on the context, its runs' times. */
    private static final class Case {
        final BitPlaneTensor x;
        final BitPlaneTensor w;
        final Tensor out;
        final double[] times;

        Case(BitPlaneTensor x, BitPlaneTensor w, Tensor out, int runs) {
            this.x = x;
            this.w = w;
            this.out = out;
            this.times = new double[runs];
        }
    }

    private void measure(int n, int k, List<Key> keys) {
        Random rnd = new Random(31L * n + k);
        List<Tensor> owned = new ArrayList<>();
        List<BitPlaneTensor> planes = new ArrayList<>();
        try {
            Map<AbqWidth, BitPlaneTensor> weights = new LinkedHashMap<>();
            Map<String, BitPlaneTensor> inputs = new HashMap<>();
            List<Case> cases = new ArrayList<>();
            for (Key key : keys) {
                BitPlaneTensor w = weights.get(key.width());
                if (w == null) {
                    w = uploadWeights(rnd, n, k, key.width().weightQuantizer());
                    planes.add(w);
                    weights.put(key.width(), w);
                }
                String xKey = key.m() + "/" + key.width().activationBits();
                BitPlaneTensor x = inputs.get(xKey);
                if (x == null) {
                    float[] xs = new float[key.m() * k];
                    for (int i = 0; i < xs.length; i++) xs[i] = (float) rnd.nextGaussian();
                    try (Tensor xt = ctx.upload(xs, key.m(), k)) {
                        x = ctx.quantizeBitPlanes(xt, key.width().activationBits(), true);
                    }
                    planes.add(x);
                    inputs.put(xKey, x);
                }
                Tensor out = ctx.allocate(DType.F32, key.m(), n);
                owned.add(out);
                cases.add(new Case(x, w, out, runs));
            }
            for (Case c : cases) ctx.gemmBitPlanesInto(c.x, c.w, null, c.out); // warm-up
            ctx.synchronize();
            for (int r = 0; r < runs; r++) {
                for (Case c : cases) {
                    long start = System.nanoTime();
                    ctx.gemmBitPlanesInto(c.x, c.w, null, c.out);
                    ctx.synchronize();
                    c.times[r] = (System.nanoTime() - start) / 1e9;
                }
            }
            for (int i = 0; i < keys.size(); i++) {
                cache.put(keys.get(i), median(cases.get(i).times));
                measurements++;
            }
        } finally {
            for (Tensor t : owned) t.close();
            for (BitPlaneTensor p : planes) p.close();
        }
    }

    private BitPlaneTensor uploadWeights(Random rnd, int n, int k, WeightQuantizer wq) {
        int qmax = wq.qmax();
        int[] codes = new int[n * k];
        for (int i = 0; i < codes.length; i++) codes[i] = rnd.nextInt(qmax + 1);
        int[] zeros = new int[n];
        for (int i = 0; i < n; i++) zeros[i] = rnd.nextInt(qmax + 1);
        float[] scales = new float[n];
        Arrays.fill(scales, 1e-3f);
        return ctx.uploadBitPlanes(codes, n, k, wq.planes(), false, zeros, scales);
    }

    /** The median (the mean of the two middle values for an even count). */
    static double median(double[] v) {
        if (v.length == 0) throw new IllegalArgumentException("median of no values");
        double[] s = v.clone();
        Arrays.sort(s);
        int h = s.length / 2;
        return s.length % 2 == 1 ? s[h] : (s[h - 1] + s[h]) / 2;
    }

    @Override
    public String toString() {
        return "bit-plane GEMM on " + ctx.backend() + ", median of " + runs + " interleaved runs";
    }
}
