package lowbit.flatquant;

import java.util.Objects;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
import lowbit.Tensor;
import lowbit.model.LinearOp;

/**
 * The online part of a FlatQuant layer at inference, {@code y = Q(x·P)·Q(W·P⁻ᵀ)ᵀ (+ b)}:
 *
 * <ol>
 *   <li>the online transform {@code x·(P1 ⊗ P2)} ({@link OnlineTransform}, in Java for now; null
 *       for a layer whose transform was folded away entirely);
 *   <li>per-token symmetric quantization with the learned activation clip ({@link TokenQuantizer}):
 *       the scales are computed in Java, the codes by the native {@code lowbit_quantize} with those
 *       scales given;
 *   <li>the native integer GEMM against the folded weights {@code W·P⁻ᵀ}, quantized offline per
 *       output channel with the learned weight clip ({@link ClippedWeights}), with lowbit.h's
 *       epilogue {@code ((float) acc·s_x[t])·s_w[n] (+ b[n])} in float32.
 * </ol>
 *
 * Supported widths are the GEMM's: W4A4, W4A8, W8A8. {@link #simulate} computes the same in Java
 * (the transform, the scales, the codes, the exact integer sum, the epilogue) and equals {@link
 * #forward} bit for bit. {@link #forward} may run concurrently (every call allocates its own
 * native tensors).
 */
public final class FlatQuantLinear implements LinearOp {
    private final Context ctx;
    private final OnlineTransform transform;
    private final TokenQuantizer activations;
    private final ClippedWeights weights;
    private final float[] bias;
    private final QuantizedTensor w;
    private final Tensor biasTensor;

    private FlatQuantLinear(Context ctx, OnlineTransform transform, TokenQuantizer activations, ClippedWeights weights, float[] bias) {
        this.ctx = Objects.requireNonNull(ctx, "FlatQuant layers run on a native context; got none");
        this.activations = Objects.requireNonNull(activations, "activation quantizer");
        this.weights = Objects.requireNonNull(weights, "weights");
        int n = weights.rows(), k = weights.cols();
        if (transform != null && transform.size() != k) {
            throw new IllegalArgumentException("the online transform is for rows of " + transform.size() + " values, the layer reads " + k);
        }
        if (weights.bits() == 8 && activations.bits() == 4) {
            throw new IllegalArgumentException("W8A4 is not a GEMM lowbit.h supports (W8A8, W4A8, W4A4)");
        }
        if (bias != null && bias.length != n) throw new IllegalArgumentException("bias needs " + n + " values, got " + bias.length);
        this.transform = transform;
        this.bias = bias == null ? null : bias.clone();
        Tensor values = ctx.upload(weights.packed(), weights.bits() == 8 ? DType.S8 : DType.S4, n, k);
        Tensor scales = null, b = null;
        try {
            scales = ctx.upload(weights.scales(), 1, n);
            b = bias == null ? null : ctx.upload(bias, 1, n);
        } catch (RuntimeException e) {
            values.close();
            if (scales != null) scales.close();
            throw e;
        }
        this.w = new QuantizedTensor(values, scales, Granularity.PER_ROW, 0);
        this.biasTensor = b;
    }

    /** A layer on {@code ctx} from quantized weights, the activation quantizer, the online transform (null: none) and a bias (null: none). */
    public static FlatQuantLinear of(Context ctx, ClippedWeights weights, float[] bias, TokenQuantizer activations, OnlineTransform transform) {
        return new FlatQuantLinear(ctx, transform, activations, weights, bias);
    }

    @Override
    public int inFeatures() {
        return weights.cols();
    }

    @Override
    public int outFeatures() {
        return weights.rows();
    }

    public ClippedWeights weights() {
        return weights;
    }

    public TokenQuantizer activations() {
        return activations;
    }

    /** The online transform, or null. */
    public OnlineTransform transform() {
        return transform;
    }

    /** The transformed input {@code x·P} ({@code x} itself, copied, without a transform): the one step a native kernel will take over. */
    float[] transformed(float[] x, int tokens) {
        int k = inFeatures();
        return transform == null ? java.util.Arrays.copyOf(x, tokens * k) : transform.apply(x, tokens);
    }

    private void checkInput(float[] x, int tokens) {
        Objects.requireNonNull(x, "x");
        if (tokens < 1 || x.length < (long) tokens * inFeatures()) {
            throw new IllegalArgumentException("x needs " + (long) tokens * inFeatures() + " values for " + tokens + " tokens, got " + x.length);
        }
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        checkInput(x, tokens);
        int n = outFeatures();
        if (y.length < (long) tokens * n) throw new IllegalArgumentException("y needs " + (long) tokens * n + " values, got " + y.length);
        float[] xt = transformed(x, tokens);
        float[] sx = activations.scales(xt, tokens, inFeatures());
        try (QuantizedTensor qa = quantize(xt, sx, tokens); Tensor out = ctx.allocate(DType.F32, tokens, n)) {
            ctx.gemmInto(qa, w, biasTensor, out);
            out.copyTo(y);
        }
    }

    private QuantizedTensor quantize(float[] xt, float[] sx, int tokens) {
        QuantizedTensor qa = ctx.allocateQuantized(tokens, inFeatures(), activations.bits(), Granularity.PER_ROW, 0);
        try (Tensor xTensor = ctx.upload(xt, tokens, inFeatures())) {
            qa.scales().copyFrom(sx);
            ctx.quantizeWithScales(xTensor, qa);
            return qa;
        } catch (RuntimeException e) {
            qa.close();
            throw e;
        }
    }

    /** The native integer part alone: {@code acc[t][n]} of the S32 GEMM on the quantized operands. */
    public int[] accumulators(float[] x, int tokens) {
        checkInput(x, tokens);
        float[] xt = transformed(x, tokens);
        float[] sx = activations.scales(xt, tokens, inFeatures());
        try (QuantizedTensor qa = quantize(xt, sx, tokens); Tensor out = ctx.allocate(DType.S32, tokens, outFeatures())) {
            ctx.gemmInto(qa.values(), w.values(), out);
            return out.toIntArray();
        }
    }

    /** The integer part in Java: {@code acc[t][n] = Σ_c qx[t][c]·qw[n][c]}, exact (long). */
    public long[] simulateAccumulators(float[] x, int tokens) {
        checkInput(x, tokens);
        float[] xt = transformed(x, tokens);
        return integerProduct(activations.codes(xt, tokens, inFeatures(), activations.scales(xt, tokens, inFeatures())), tokens);
    }

    private long[] integerProduct(int[] qx, int tokens) {
        int n = outFeatures(), k = inFeatures();
        int[] qw = weights.codes();
        long[] acc = new long[tokens * n];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < n; j++) {
                long s = 0;
                for (int c = 0; c < k; c++) s += (long) qx[t * k + c] * qw[j * k + c];
                acc[t * n + j] = s;
            }
        }
        return acc;
    }

    /** {@link #forward} in Java, bit for bit: transform, scales, codes, exact integer sum, then {@code ((float) acc·s_x)·s_w (+ b)}. */
    public float[] simulate(float[] x, int tokens) {
        checkInput(x, tokens);
        int n = outFeatures(), k = inFeatures();
        float[] xt = transformed(x, tokens);
        float[] sx = activations.scales(xt, tokens, k);
        long[] acc = integerProduct(activations.codes(xt, tokens, k, sx), tokens);
        float[] sw = weights.scales();
        float[] y = new float[tokens * n];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < n; j++) {
                float v = ((float) acc[t * n + j] * sx[t]) * sw[j];
                y[t * n + j] = bias == null ? v : v + bias[j];
            }
        }
        return y;
    }

    @Override
    public void close() {
        w.close();
        if (biasTensor != null) biasTensor.close();
    }

    @Override
    public String toString() {
        return "FlatQuantLinear[" + outFeatures() + " x " + inFeatures() + ", W" + weights.bits() + ", " + activations
                + (transform == null ? ", no online transform" : ", online " + transform.factorSizes()[0] + " x " + transform.factorSizes()[1]) + "]";
    }
}
