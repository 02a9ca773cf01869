package lowbit.flatquant;

import java.util.List;
import lowbit.calibrate.QuantSpec;
import lowbit.model.KvCache;

/**
 * FlatQuant's KV-cache path at inference, as a {@link KvCache.Codec}: per layer, keys after RoPE
 * become {@code k·(I ⊗ Pk)} and queries {@code q·(I ⊗ Pk⁻ᵀ)} (so {@code q·kᵀ} is unchanged before
 * quantization); keys and values (which already carry Pv through attn_v's folded weights) are
 * quantized asymmetrically per group of {@code kv.groupSize()} consecutive elements of a token's
 * row (one group per head when it equals the head size) with the learned clip pair of the site:
 * {@code hi = σ(γ)·max}, {@code lo = σ(β)·min}, {@code s = (hi − lo)/qmax} (floored at 1e-10),
 * {@code z = rint(−lo/s)}, stored value {@code (clamp(rint(x/s) + z, 0, qmax) − z)·s}, the
 * calibration's fake quantizer ({@link lowbit.calibrate.FakeQuant}) in FP64, rounded to float32.
 * The cache holds these dequantized values as floats (simulated KV4: same numbers as a packed
 * INT4 cache, not its memory saving).
 */
public final class FlatQuantKvCodec implements KvCache.Codec {
    /** One layer's K transform ({@code Pk}, {@code Pk⁻ᵀ}, {@code headDim × headDim} row-major) and clip pairs (hi, lo) of keys and values. */
    public record Layer(float[] pk, float[] pkInverseTranspose, double[] keyClip, double[] valueClip) {}

    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final QuantSpec kv;
    private final List<Layer> layers;

    public FlatQuantKvCodec(int heads, int kvHeads, int headDim, QuantSpec kv, List<Layer> layers) {
        if (kv == null || kv.symmetric() || kv.granularity() != lowbit.Granularity.PER_GROUP) {
            throw new IllegalArgumentException("FlatQuant's KV cache quantizer is asymmetric per group, got " + kv);
        }
        if ((kvHeads * headDim) % kv.groupSize() != 0) {
            throw new IllegalArgumentException("KV rows of " + kvHeads * headDim + " values are not whole groups of " + kv.groupSize());
        }
        for (Layer l : layers) {
            if (l.pk().length != headDim * headDim || l.pkInverseTranspose().length != headDim * headDim) {
                throw new IllegalArgumentException("K transforms must be " + headDim + " x " + headDim);
            }
        }
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kv = kv;
        this.layers = List.copyOf(layers);
    }

    private Layer layer(int index) {
        if (index < 0 || index >= layers.size()) throw new IllegalArgumentException("no KV transform for layer " + index + " (" + layers.size() + " layers)");
        return layers.get(index);
    }

    @Override
    public void keys(int layer, float[] k, int tokens) {
        Layer l = layer(layer);
        perHead(k, tokens * kvHeads, l.pk());
        fakeQuant(k, tokens * kvHeads * headDim, l.keyClip());
    }

    @Override
    public void values(int layer, float[] v, int tokens) {
        fakeQuant(v, tokens * kvHeads * headDim, layer(layer).valueClip());
    }

    @Override
    public void queries(int layer, float[] q, int tokens) {
        perHead(q, tokens * heads, layer(layer).pkInverseTranspose());
    }

    /** Each of {@code rows} head rows of {@code x} times {@code p} ({@code headDim × headDim}), in place. */
    private void perHead(float[] x, int rows, float[] p) {
        int d = headDim;
        float[] y = new float[d];
        for (int r = 0; r < rows; r++) {
            java.util.Arrays.fill(y, 0f);
            for (int j = 0; j < d; j++) {
                float a = x[r * d + j];
                for (int b = 0; b < d; b++) y[b] += a * p[j * d + b];
            }
            System.arraycopy(y, 0, x, r * d, d);
        }
    }

    private void fakeQuant(float[] x, int count, double[] clip) {
        int g = kv.groupSize();
        int qmax = (1 << kv.bits()) - 1;
        for (int o = 0; o < count; o += g) {
            double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
            for (int i = o; i < o + g; i++) {
                if (!Float.isFinite(x[i])) throw new IllegalArgumentException("KV cache input " + x[i] + " at " + i + " is not finite");
                min = Math.min(min, x[i]);
                max = Math.max(max, x[i]);
            }
            double hi = clip[0] * max, lo = clip[1] * min;
            double s = (hi - lo) / qmax;
            if (!(s >= ClippedWeights.SCALE_FLOOR)) s = ClippedWeights.SCALE_FLOOR;
            double z = Math.rint(-lo / s);
            for (int i = o; i < o + g; i++) {
                double q = Math.min(qmax, Math.max(0, Math.rint(x[i] / s + z)));
                x[i] = (float) ((q - z) * s);
            }
        }
    }
}
