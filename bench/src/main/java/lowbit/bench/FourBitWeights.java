package lowbit.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import lowbit.Context;
import lowbit.DType;
import lowbit.DgqWeights;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
import lowbit.Tensor;

/**
 * The 4-bit weights of one (K, N) for the GPU benches: W4A8 (packed S4, per-channel scales) and DGQ
 * G=128 (the same codes, signed, with integer group scales), each in copies that together hold at
 * least 128 MB, so launch i reading copy i mod copies is not served by the 50 MB L2.
 */
final class FourBitWeights implements AutoCloseable {
    static final int DGQ_GROUP = 128;
    private static final long ROTATE_BYTES = 128L << 20;
    final List<QuantizedTensor> w4 = new ArrayList<>();
    final List<DgqWeights> dgq = new ArrayList<>();
    final List<Tensor> owned = new ArrayList<>();

    FourBitWeights(Context ctx, int n, int k, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        byte[] packed = new byte[Math.toIntExact((long) n * k / 2)];
        for (int i = 0; i < packed.length; i++) {
            packed[i] = (byte) rnd.nextInt(256);  // two INT4 values in -8..7
        }
        Tensor s4 = track(ctx.upload(packed, DType.S4, n, k));
        Tensor s4Scales = track(ctx.upload(GemmProblem.randomScales(rnd, n), 1, n));
        w4.add(new QuantizedTensor(s4, s4Scales, Granularity.PER_ROW, 0));
        for (long bytes = packed.length; bytes < ROTATE_BYTES; bytes += packed.length) {
            Tensor copy = track(ctx.allocate(DType.S4, n, k).copyFrom(s4));
            w4.add(new QuantizedTensor(copy, s4Scales, Granularity.PER_ROW, 0));
        }
        // DGQ: any signed code with S2 in 1..15 keeps |q·S2| <= 120 (lowbit_dgq_check passes).
        byte[] s2 = new byte[n * (k / DGQ_GROUP)];
        for (int i = 0; i < s2.length; i++) {
            s2[i] = (byte) (1 + rnd.nextInt(15));
        }
        float[] cs = GemmProblem.randomScales(rnd, n);
        long dgqBytes = packed.length + (long) s2.length;
        for (long bytes = 0; bytes < ROTATE_BYTES; bytes += dgqBytes) {
            dgq.add(ctx.uploadDgq(packed, s2, null, cs, n, k, DGQ_GROUP));
        }
    }

    private Tensor track(Tensor t) {
        owned.add(t);
        return t;
    }

    @Override
    public void close() {
        dgq.forEach(DgqWeights::close);
        owned.forEach(Tensor::close);
    }
}
