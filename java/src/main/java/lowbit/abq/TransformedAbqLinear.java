package lowbit.abq;

import java.util.Objects;
import lowbit.flatquant.OnlineTransform;
import lowbit.model.LinearOp;

/**
 * An {@link AbqLinear} (bit-plane GEMM, any widths) behind FlatQuant's online part: {@code y =
 * Q(clip(x·P))·Q(W·P⁻ᵀ)ᵀ (+ b)}, with {@code W·P⁻ᵀ} folded offline into the inner layer's weight
 * codes. Per token t, in float32:
 *
 * <ol>
 *   <li>the online transform {@code x·(P1 ⊗ P2)} ({@link OnlineTransform#apply}: Java, fixed FMA
 *       order), or x itself when there is none;
 *   <li>the learned activation clip: with the row's extremes {@code min ≤ max}, {@code hi =
 *       clipHi·max}, {@code lo = clipLo·min}, every value is clamped to
 *       <ul>
 *         <li>symmetric activations: {@code [−amax, amax]}, {@code amax = max(|lo|, |hi|)} — so the
 *             per-token quantizer's scale is {@code amax/qmax}, FlatQuant's {@code TokenQuantizer}
 *             scale, and the codes are its codes (a clamped value rounds to ±qmax as there);
 *         <li>asymmetric activations: {@code [lo, hi]} — the range of the calibration's asymmetric
 *             fake quantizer ({@code FakeQuant}: {@code s = (hi − lo)/qmax}); {@link Grid} widens it
 *             to include 0, which changes nothing for rows holding both signs;
 *       </ul>
 *   <li>the inner layer: per-token quantization to bit planes, the native bit-plane GEMM with the
 *       zero-point terms, the epilogue ({@link AbqLinear}).
 * </ol>
 *
 * Steps 1-2 run in Java on both paths, so {@link #forward} equals {@link #simulate} bit for bit
 * exactly when the inner layer's native part equals its Java twin (the integer sum included). The
 * clip factors are in (0, 1]; 1, 1 is no clipping. {@link #forward} may run concurrently.
 */
public final class TransformedAbqLinear implements LinearOp {
    private final OnlineTransform transform;
    private final float clipHi;
    private final float clipLo;
    private final AbqLinear layer;

    private TransformedAbqLinear(OnlineTransform transform, double clipHi, double clipLo, AbqLinear layer) {
        this.layer = Objects.requireNonNull(layer, "the bit-plane layer");
        if (!(clipHi > 0 && clipHi <= 1) || !(clipLo > 0 && clipLo <= 1)) {
            throw new IllegalArgumentException("activation clip factors must be in (0, 1], got " + clipHi + " and " + clipLo);
        }
        if (transform != null && transform.size() != layer.inFeatures()) {
            throw new IllegalArgumentException("the online transform is for rows of " + transform.size() + " values, the layer reads "
                    + layer.inFeatures());
        }
        this.transform = transform;
        this.clipHi = (float) clipHi;
        this.clipLo = (float) clipLo;
    }

    /**
     * {@code layer} (weights already folded with {@code P⁻ᵀ}; this object owns and closes it) behind
     * {@code transform} (null: none) and the activation clip factors {@code clipHi} (the max side)
     * and {@code clipLo} (the min side).
     */
    public static TransformedAbqLinear of(OnlineTransform transform, double clipHi, double clipLo, AbqLinear layer) {
        return new TransformedAbqLinear(transform, clipHi, clipLo, layer);
    }

    @Override
    public int inFeatures() {
        return layer.inFeatures();
    }

    @Override
    public int outFeatures() {
        return layer.outFeatures();
    }

    /** The inner bit-plane layer. */
    public AbqLinear layer() {
        return layer;
    }

    /** The online transform, or null. */
    public OnlineTransform transform() {
        return transform;
    }

    public float clipHi() {
        return clipHi;
    }

    public float clipLo() {
        return clipLo;
    }

    private void checkInput(float[] x, int tokens) {
        Objects.requireNonNull(x, "x");
        if (tokens < 1 || x.length < (long) tokens * inFeatures()) {
            throw new IllegalArgumentException("x needs " + (long) tokens * inFeatures() + " values for " + tokens + " tokens, got " + x.length);
        }
    }

    /**
     * What the inner layer quantizes: {@code x·P} (a copy of x without a transform), clamped per
     * token as the class comment says. A non-finite value throws, naming token and channel.
     */
    public float[] prepared(float[] x, int tokens) {
        checkInput(x, tokens);
        int k = inFeatures();
        float[] v = transform == null ? java.util.Arrays.copyOf(x, tokens * k) : transform.apply(x, tokens);
        boolean symmetric = !layer.activations().isAsymmetric();
        for (int t = 0; t < tokens; t++) {
            float min = Float.POSITIVE_INFINITY, max = Float.NEGATIVE_INFINITY;
            for (int c = t * k; c < (t + 1) * k; c++) {
                if (!Float.isFinite(v[c])) {
                    throw new IllegalArgumentException("layer input " + (transform == null ? "" : "after the online transform ") + v[c]
                            + " at token " + t + ", channel " + (c - t * k) + " is not finite");
                }
                min = Math.min(min, v[c]);
                max = Math.max(max, v[c]);
            }
            float hi = clipHi * max, lo = clipLo * min;
            if (symmetric) {
                hi = Math.max(Math.abs(lo), Math.abs(hi));
                lo = -hi;
            }
            for (int c = t * k; c < (t + 1) * k; c++) v[c] = Math.min(Math.max(v[c], lo), hi);
        }
        return v;
    }

    /** The per-token activation codes, scales and zero points the layer multiplies (Java; the native packer gives the same). */
    public IntCodes activationCodes(float[] x, int tokens) {
        return layer.activations().quantize(prepared(x, tokens), tokens, inFeatures());
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        layer.forward(prepared(x, tokens), tokens, y);
    }

    /** The native integer part: {@code acc[t][j]} of the bit-plane GEMM (low 32 bits; exact while |acc| < 2^31). */
    public int[] accumulators(float[] x, int tokens) {
        return layer.accumulators(prepared(x, tokens), tokens);
    }

    /** The integer part in Java, exact. */
    public long[] simulateAccumulators(float[] x, int tokens) {
        return layer.simulateAccumulators(prepared(x, tokens), tokens);
    }

    /** {@link #forward} in Java, bit for bit. */
    public float[] simulate(float[] x, int tokens) {
        return layer.simulate(prepared(x, tokens), tokens);
    }

    @Override
    public void close() {
        layer.close();
    }

    @Override
    public String toString() {
        return "TransformedAbqLinear[" + (transform == null ? "no online transform" : "online " + transform.factorSizes()[0] + " x "
                + transform.factorSizes()[1]) + ", clip " + clipHi + "/" + clipLo + ", " + layer + "]";
    }
}
