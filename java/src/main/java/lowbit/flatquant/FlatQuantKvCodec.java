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
 *
 * <p>Two storage modes with the same numbers: <i>packed</i> ({@link #packing} set, for at most 4
 * bits): the cache stores the codes {@code q} two per byte with each group's {@code s} and {@code z}
 * and reads back {@code (float) ((q − z)·s)} (lowbit.model's packed KV store, about 4/32 of the float
 * cache plus 16 bytes per group); <i>simulated</i>: {@link #keys} and {@link #values} leave those
 * dequantized values in the rows and the cache stores them as floats. Both run the same {@link
 * #quantize} and the same final expression, so attention sees the same floats bit for bit.
 */
public final class FlatQuantKvCodec implements KvCache.Codec, KvCache.GroupQuantizer {
    /** One layer's K transform ({@code Pk}, {@code Pk⁻ᵀ}, {@code headDim × headDim} row-major) and clip pairs (hi, lo) of keys and values. */
    public record Layer(float[] pk, float[] pkInverseTranspose, double[] keyClip, double[] valueClip) {}

    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final QuantSpec kv;
    private final List<Layer> layers;
    private final boolean packed;

    /** The simulated (float cache) codec. */
    public FlatQuantKvCodec(int heads, int kvHeads, int headDim, QuantSpec kv, List<Layer> layers) {
        this(heads, kvHeads, headDim, kv, layers, false);
    }

    /** {@code packed}: the cache stores packed codes (needs at most 4 bits); false: simulated, dequantized floats. */
    public FlatQuantKvCodec(int heads, int kvHeads, int headDim, QuantSpec kv, List<Layer> layers, boolean packed) {
        if (kv == null || kv.symmetric() || kv.granularity() != lowbit.Granularity.PER_GROUP) {
            throw new IllegalArgumentException("FlatQuant's KV cache quantizer is asymmetric per group, got " + kv);
        }
        if ((kvHeads * headDim) % kv.groupSize() != 0) {
            throw new IllegalArgumentException("KV rows of " + kvHeads * headDim + " values are not whole groups of " + kv.groupSize());
        }
        if (heads < 1 || kvHeads < 1 || headDim < 1 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("heads " + heads + ", KV heads " + kvHeads + ", head size " + headDim + ": need positive sizes, heads a multiple of KV heads");
        }
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            if (l.pk().length != headDim * headDim || l.pkInverseTranspose().length != headDim * headDim) {
                throw new IllegalArgumentException("K transforms must be " + headDim + " x " + headDim);
            }
            for (float v : l.pk()) if (!Float.isFinite(v)) throw new IllegalArgumentException("layer " + i + ": the K transform has a non-finite entry " + v);
            for (float v : l.pkInverseTranspose()) if (!Float.isFinite(v)) throw new IllegalArgumentException("layer " + i + ": the inverse K transform has a non-finite entry " + v);
            checkClip(l.keyClip(), "key", i);
            checkClip(l.valueClip(), "value", i);
        }
        if (packed && kv.bits() > 4) throw new IllegalArgumentException("a packed KV cache holds codes of at most 4 bits, got " + kv.bits());
        this.packed = packed;
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kv = kv;
        this.layers = List.copyOf(layers);
    }

    private static void checkClip(double[] c, String what, int layer) {
        if (c == null || c.length != 2 || !(c[0] > 0 && c[0] <= 1) || !(c[1] > 0 && c[1] <= 1)) {
            throw new IllegalArgumentException("layer " + layer + ": the " + what + " clip must be two factors in (0, 1], got " + java.util.Arrays.toString(c));
        }
    }

    /** True when caches store packed codes ({@link #packing} is this codec). */
    public boolean isPacked() {
        return packed;
    }

    /** This codec with the other storage mode (same transforms, clips and quantizer). */
    public FlatQuantKvCodec withPacked(boolean packed) {
        return new FlatQuantKvCodec(heads, kvHeads, headDim, kv, layers, packed);
    }

    @Override
    public KvCache.GroupQuantizer packing() {
        return packed ? this : null;
    }

    @Override
    public int groupSize() {
        return kv.groupSize();
    }

    @Override
    public void quantizeKeys(int layer, float[] k, int tokens, byte[] codes, double[] scales, double[] zeros) {
        Layer l = layer(layer);
        perHead(k, tokens * kvHeads, l.pk());
        packedCodes(k, tokens * kvHeads * headDim, l.keyClip(), codes, scales, zeros);
    }

    @Override
    public void quantizeValues(int layer, float[] v, int tokens, byte[] codes, double[] scales, double[] zeros) {
        packedCodes(v, tokens * kvHeads * headDim, layer(layer).valueClip(), codes, scales, zeros);
    }

    private void packedCodes(float[] x, int count, double[] clip, byte[] codes, double[] scales, double[] zeros) {
        int[] q = new int[count];
        quantize(x, count, clip, q, scales, zeros);
        for (int i = 0; i < count; i++) codes[i] = (byte) q[i];
    }

    /** Query heads. */
    public int heads() {
        return heads;
    }

    /** KV heads. */
    public int kvHeads() {
        return kvHeads;
    }

    public int headDim() {
        return headDim;
    }

    /** The K/V quantizer: asymmetric, per group of {@code groupSize} consecutive elements of a token's row. */
    public QuantSpec spec() {
        return kv;
    }

    /** The per-layer transforms and clips, in layer order (the records' arrays are live: do not modify). */
    public List<Layer> layers() {
        return layers;
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
        int[] q = new int[count];
        double[] s = new double[count / g], z = new double[count / g];
        quantize(x, count, clip, q, s, z);
        for (int i = 0; i < count; i++) x[i] = (float) ((q[i] - z[i / g]) * s[i / g]);
    }

    /**
     * The group quantizer: codes {@code q = clamp(rint(x/s + z), 0, qmax)} of {@code x[0, count)} and
     * per group {@code s}, {@code z} (the value of a code is {@code (float) ((q − z)·s)}).
     */
    private void quantize(float[] x, int count, double[] clip, int[] codes, double[] scales, double[] zeros) {
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
            for (int i = o; i < o + g; i++) codes[i] = (int) Math.min(qmax, Math.max(0, Math.rint(x[i] / s + z)));
            scales[o / g] = s;
            zeros[o / g] = z;
        }
    }
}
