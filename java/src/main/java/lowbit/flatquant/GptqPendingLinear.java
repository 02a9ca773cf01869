package lowbit.flatquant;

import java.util.Arrays;
import lowbit.Context;
import lowbit.model.LinearOp;
import lowbit.quant.Gptq;

/**
 * A FlatQuant layer whose weights are not rounded yet: the first {@link #forward} (the calibration
 * pass of the quantized model, in execution order) transforms its input with the layer's online
 * transform ({@code x·P}, the Java float32 reference of the fused kernel), takes the Hessian {@code
 * H = (x·P)ᵀ(x·P)} of those transformed, not activation-quantized, inputs (the quantized model's
 * stream: every earlier layer already runs quantized), rounds the folded weight {@code W·P⁻ᵀ} by GPTQ
 * on the learned clip's scales ({@link ClippedWeights#gptq}), drops the FP64 weight and from then on
 * is that {@link FlatQuantLinear} ({@link #resolved}). Layers reading one input (q/k/v, gate/up)
 * share a {@link SharedHessian}, so {@code H} is computed once for them.
 */
public final class GptqPendingLinear implements LinearOp {
    private final Context ctx;
    private final String name;
    private final int rows;
    private final int cols;
    private final int bits;
    private final double[] clip;
    private final float[] bias;
    private final TokenQuantizer activations;
    private final OnlineTransform transform;
    private final SharedHessian hessian;
    private final Gptq.Options options;
    private double[] weight;
    private FlatQuantLinear resolved;

    /**
     * {@code weight} ({@code rows × cols}, folded, FP64; kept until resolved), the weight clip
     * factors ({@code rows × 2}, or null), bias (or null), activation quantizer, online transform (or
     * null) and the Hessian shared with the layers reading the same input; {@code name} for messages.
     */
    GptqPendingLinear(Context ctx, String name, double[] weight, int rows, int cols, int bits, double[] clip, float[] bias, TokenQuantizer activations,
                      OnlineTransform transform, SharedHessian hessian, Gptq.Options options) {
        if (ctx == null) throw new IllegalArgumentException("FlatQuant layers run on a native context; got none");
        if (weight == null || rows < 1 || cols < 1 || weight.length != (long) rows * cols) {
            throw new IllegalArgumentException(name + ": weights must be " + rows + " x " + cols + ", got " + (weight == null ? "none" : weight.length + " values"));
        }
        if (transform != null && transform.size() != cols) throw new IllegalArgumentException(name + ": the online transform is for rows of " + transform.size() + " values, the layer reads " + cols);
        if (activations == null || hessian == null || options == null) throw new IllegalArgumentException(name + ": activation quantizer, Hessian and GPTQ options are required");
        this.ctx = ctx;
        this.name = name;
        this.weight = weight;
        this.rows = rows;
        this.cols = cols;
        this.bits = bits;
        this.clip = clip == null ? null : clip.clone();
        this.bias = bias == null ? null : bias.clone();
        this.activations = activations;
        this.transform = transform;
        this.hessian = hessian;
        this.options = options;
    }

    @Override
    public int inFeatures() {
        return cols;
    }

    @Override
    public int outFeatures() {
        return rows;
    }

    @Override
    public synchronized void forward(float[] x, int tokens, float[] y) {
        if (resolved == null) {
            if (tokens < 1 || x.length < (long) tokens * cols) throw new IllegalArgumentException(name + ": x needs " + (long) tokens * cols + " values for " + tokens + " tokens, got " + x.length);
            double[] h = hessian.of(x, tokens, cols, transform);
            ClippedWeights cw = ClippedWeights.gptq(weight, rows, cols, bits, clip, h, options);
            resolved = FlatQuantLinear.of(ctx, cw, bias, activations, transform);
            weight = null;
        }
        resolved.forward(x, tokens, y);
    }

    /** The layer with GPTQ weights; an exception naming the layer when no input has reached it yet. */
    public synchronized FlatQuantLinear resolved() {
        if (resolved == null) throw new IllegalStateException(name + ": GPTQ needs the layer's calibration inputs, but no forward pass reached it");
        return resolved;
    }

    @Override
    public synchronized void close() {
        if (resolved != null) resolved.close();
        weight = null;
    }

    @Override
    public String toString() {
        return "GptqPendingLinear[" + name + ", " + rows + " x " + cols + ", W" + bits + (resolved == null ? ", not rounded yet" : ", rounded") + "]";
    }

    /**
     * The Hessian of one input site, shared by its {@code readers} layers: computed from the
     * transformed input the first time, handed out again while the raw input is the same (the
     * readers of one site see the same array in one pass; another input recomputes it), and dropped
     * once every reader has taken it.
     */
    static final class SharedHessian {
        private int remaining;
        private float[] input;
        private int tokens;
        private double[] h;

        SharedHessian(int readers) {
            if (readers < 1) throw new IllegalArgumentException("a shared Hessian needs >= 1 reader, got " + readers);
            this.remaining = readers;
        }

        synchronized double[] of(float[] x, int tokens, int cols, OnlineTransform transform) {
            int n = tokens * cols;
            double[] out = h;
            if (out == null || this.tokens != tokens || !Arrays.equals(input, 0, n, x, 0, n)) {
                float[] xt = transform == null ? Arrays.copyOf(x, n) : transform.apply(x, tokens);
                out = Gptq.hessian(xt, tokens, cols);
            }
            if (--remaining > 0) {
                h = out;
                input = Arrays.copyOf(x, n);
                this.tokens = tokens;
            } else {
                h = null;
                input = null;
            }
            return out;
        }
    }
}
