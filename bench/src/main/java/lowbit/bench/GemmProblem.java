package lowbit.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
import lowbit.Tensor;

/**
 * The device operands of one benchmark GEMM {@code out[M,N] = x[M,K] · w[N,K]ᵀ}: random INT8
 * activations with per-token scales and INT8 weights with per-channel scales (lowbit's W8A8), the
 * same shapes in FP16 for the cuBLAS baseline, and F16 outputs. The weights exist in several copies
 * (together at least 128 MB per dtype), and launch i reads copy i mod copies, so that back-to-back
 * launches on shapes whose weights fit in the 50 MB L2 still read them from device memory.
 */
final class GemmProblem implements AutoCloseable {
    private static final long ROTATE_BYTES = 128L << 20;

    final int m;
    final int n;
    final int k;
    private final List<AutoCloseable> owned = new ArrayList<>();
    private final QuantizedTensor x8;
    private final List<QuantizedTensor> w8 = new ArrayList<>();
    private final Tensor x16;
    private final List<Tensor> w16 = new ArrayList<>();
    final Tensor out;

    /** Weights of one (K, N), shared by the problems of every M. */
    static final class Weights implements AutoCloseable {
        final int n;
        final int k;
        final List<Tensor> s8 = new ArrayList<>();
        final List<Tensor> f16 = new ArrayList<>();
        final Tensor scales;

        Weights(Context ctx, int n, int k, long seed) {
            this.n = n;
            this.k = k;
            SplittableRandom rnd = new SplittableRandom(seed);
            Tensor w8 = ctx.upload(randomS8(rnd, (long) n * k), DType.S8, n, k);
            s8.add(w8);
            for (long bytes = (long) n * k; bytes < ROTATE_BYTES; bytes += (long) n * k) {
                s8.add(ctx.allocate(DType.S8, n, k).copyFrom(w8));
            }
            Tensor w16 = ctx.upload(randomF16(rnd, (long) n * k), DType.F16, n, k);
            f16.add(w16);
            for (long bytes = 2L * n * k; bytes < ROTATE_BYTES; bytes += 2L * n * k) {
                f16.add(ctx.allocate(DType.F16, n, k).copyFrom(w16));
            }
            scales = ctx.upload(randomScales(rnd, n), 1, n);
        }

        @Override
        public void close() {
            s8.forEach(Tensor::close);
            f16.forEach(Tensor::close);
            scales.close();
        }
    }

    GemmProblem(Context ctx, Weights w, int m, long seed) {
        this.m = m;
        this.n = w.n;
        this.k = w.k;
        SplittableRandom rnd = new SplittableRandom(seed);
        Tensor xv = track(ctx.upload(randomS8(rnd, (long) m * k), DType.S8, m, k));
        Tensor xs = track(ctx.upload(randomScales(rnd, m), 1, m));
        x8 = new QuantizedTensor(xv, xs, Granularity.PER_ROW, 0);
        for (Tensor t : w.s8) {
            w8.add(new QuantizedTensor(t, w.scales, Granularity.PER_ROW, 0));
        }
        x16 = track(ctx.upload(randomF16(rnd, (long) m * k), DType.F16, m, k));
        w16.addAll(w.f16);
        out = track(ctx.allocate(DType.F16, m, n));
    }

    /** lowbit W8A8, launch i (config: a name, {@code Context.AUTO} or {@code Context.PORTABLE}). */
    void w8a8(Context ctx, String config, int i) {
        ctx.gemmInto(x8, w8.get(i % w8.size()), null, out, config);
    }

    /** The configuration the dispatch picks for this problem. */
    String dispatched(Context ctx) {
        return ctx.gemmConfigFor(x8, w8.get(0), DType.F16);
    }

    /** cuBLAS FP16, launch i. */
    void f16(Context ctx, int i) {
        ctx.baselineGemmF16(x16, w16.get(i % w16.size()), out);
    }

    private Tensor track(Tensor t) {
        owned.add(t);
        return t;
    }

    @Override
    public void close() throws Exception {
        for (AutoCloseable c : owned) {
            c.close();
        }
    }

    static byte[] randomS8(SplittableRandom rnd, long count) {
        byte[] v = new byte[Math.toIntExact(count)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (byte) (rnd.nextInt(255) - 127);
        }
        return v;
    }

    /** FP16 values v / 64 for uniform integers v in [-127, 127]: never zero-heavy, never overflowing. */
    static short[] randomF16(SplittableRandom rnd, long count) {
        short[] table = new short[255];
        for (int v = -127; v <= 127; v++) {
            table[v + 127] = lowbit.Half.fromFloat(v / 64f);
        }
        short[] h = new short[Math.toIntExact(count)];
        for (int i = 0; i < h.length; i++) {
            h[i] = table[rnd.nextInt(255)];
        }
        return h;
    }

    static float[] randomScales(SplittableRandom rnd, int count) {
        float[] s = new float[count];
        for (int i = 0; i < count; i++) {
            s[i] = (float) (1e-4 * (0.5 + rnd.nextDouble()));
        }
        return s;
    }
}
