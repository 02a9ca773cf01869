package lowbit.flatquant;

import java.util.Objects;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.NonFiniteInputException;
import lowbit.QuantizedTensor;
import lowbit.Tensor;
import lowbit.model.LinearOp;

/**
 * The online part of a FlatQuant layer at inference, {@code y = Q(x·P)·Q(W·P⁻ᵀ)ᵀ (+ b)}:
 *
 * <ol>
 *   <li>the online transform {@code x·(P1 ⊗ P2)} and per-token symmetric quantization with the
 *       learned activation clip, fused in the native {@code lowbit_kron_quantize} ({@link
 *       Context#kronQuantizeInto}: AVX-512 or scalar on the CPU backend, one kernel on CUDA) when
 *       both factors are at most {@link Context#KRON_MAX_FACTOR}; otherwise (a layer without a
 *       transform, or a larger factor) the transform in Java ({@link OnlineTransform}), the scales in
 *       Java ({@link TokenQuantizer}) and the codes by the native {@code lowbit_quantize} with those
 *       scales given;
 *   <li>the native integer GEMM against the folded weights {@code W·P⁻ᵀ}, quantized offline per
 *       output channel with the learned weight clip ({@link ClippedWeights}), with lowbit.h's
 *       epilogue {@code ((float) acc·s_x[t])·s_w[n] (+ b[n])} in float32.
 * </ol>
 *
 * Supported widths are the GEMM's: W4A4, W4A8, W8A8. {@link #simulate} is the Java reference: the
 * transform in {@link OnlineTransform}'s fixed-order FMA arithmetic (the one lowbit.h fixes for the
 * fused kernel), the scales and codes of {@link TokenQuantizer}, the exact integer sum, the epilogue;
 * {@link #forward} equals it bit for bit on either path. {@link #forward} may run concurrently (every
 * call allocates its own native tensors; the uploaded factors are only read).
 */
public final class FlatQuantLinear implements LinearOp {
    private final Context ctx;
    private final OnlineTransform transform;
    private final TokenQuantizer activations;
    private final ClippedWeights weights;
    private final float[] bias;
    private final QuantizedTensor w;
    private final Tensor biasTensor;
    /** The dense factors on the context for the fused kernel, or null (no transform, or a factor above {@link Context#KRON_MAX_FACTOR}). */
    private final Tensor p1;
    private final Tensor p2;

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
        Tensor scales = null, b = null, f1 = null, f2 = null;
        try {
            scales = ctx.upload(weights.scales(), 1, n);
            b = bias == null ? null : ctx.upload(bias, 1, n);
            if (fused(transform)) {
                int[] f = transform.factorSizes();
                f1 = ctx.upload(transform.denseP1(), f[0], f[0]);
                f2 = ctx.upload(transform.denseP2(), f[1], f[1]);
            }
        } catch (RuntimeException e) {
            for (Tensor t : new Tensor[] {values, scales, b, f1}) if (t != null) t.close();
            throw e;
        }
        this.w = new QuantizedTensor(values, scales, Granularity.PER_ROW, 0);
        this.biasTensor = b;
        this.p1 = f1;
        this.p2 = f2;
    }

    /** Whether {@code t} runs on the fused native kernel: a transform whose factors the kernel accepts. */
    private static boolean fused(OnlineTransform t) {
        return t != null && t.factorSizes()[0] <= Context.KRON_MAX_FACTOR && t.factorSizes()[1] <= Context.KRON_MAX_FACTOR;
    }

    /** True when {@link #forward} transforms and quantizes in the fused native kernel ({@code lowbit_kron_quantize}). */
    public boolean usesFusedTransform() {
        return p1 != null;
    }

    /** The bias (a copy), or null. */
    public float[] bias() {
        return bias == null ? null : bias.clone();
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

    /** The transformed input {@code x·P} in Java ({@code x} itself, copied, without a transform): the reference of the fused kernel's transform. */
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
        try (QuantizedTensor qa = quantize(x, tokens); Tensor out = ctx.allocate(DType.F32, tokens, n)) {
            ctx.gemmInto(qa, w, biasTensor, out);
            out.copyTo(y);
        } catch (NonFiniteInputException e) {
            throw nonFinite(e);
        }
    }

    /**
     * The quantized activations of {@code x}: the fused native transform + quantize, or the Java
     * transform and scales with the native quantizer.
     */
    private QuantizedTensor quantize(float[] x, int tokens) {
        int k = inFeatures();
        QuantizedTensor qa = ctx.allocateQuantized(tokens, k, activations.bits(), Granularity.PER_ROW, 0);
        try {
            if (p1 != null) {
                try (Tensor xTensor = ctx.upload(x.length == tokens * k ? x : java.util.Arrays.copyOf(x, tokens * k), tokens, k)) {
                    ctx.kronQuantizeInto(xTensor, p1, p2, activations.clipHi(), activations.clipLo(), qa);
                }
            } else {
                float[] xt = transformed(x, tokens);
                float[] sx = activations.scales(xt, tokens, k);
                try (Tensor xTensor = ctx.upload(xt, tokens, k)) {
                    qa.scales().copyFrom(sx);
                    ctx.quantizeWithScales(xTensor, qa);
                }
            }
            return qa;
        } catch (RuntimeException e) {
            qa.close();
            throw e;
        }
    }

    /** The fused kernel's report of a NaN/Inf (in x, or in x·P), as the Java path's exception type. */
    private IllegalArgumentException nonFinite(NonFiniteInputException e) {
        return new IllegalArgumentException("FlatQuant layer " + this + ": input not finite: " + e.getMessage(), e);
    }

    /** The native integer part alone: {@code acc[t][n]} of the S32 GEMM on the quantized operands. */
    public int[] accumulators(float[] x, int tokens) {
        checkInput(x, tokens);
        try (QuantizedTensor qa = quantize(x, tokens); Tensor out = ctx.allocate(DType.S32, tokens, outFeatures())) {
            ctx.gemmInto(qa.values(), w.values(), out);
            return out.toIntArray();
        } catch (NonFiniteInputException e) {
            throw nonFinite(e);
        }
    }

    /** Quantized activations: {@code codes} ({@code tokens × inFeatures}, row-major) and one {@code scale} per token. */
    public record ActivationCodes(int[] codes, float[] scales) {}

    /**
     * The activation codes and per-token scales the native path computes for {@code x} (the fused
     * kernel, or Java scales with the native quantizer), read back; for tests against {@link
     * #simulateCodes}.
     */
    public ActivationCodes nativeCodes(float[] x, int tokens) {
        checkInput(x, tokens);
        int k = inFeatures();
        try (QuantizedTensor qa = quantize(x, tokens)) {
            byte[] b = qa.values().toByteArray();
            int[] codes = new int[tokens * k];
            long ld = qa.values().ld();
            for (int t = 0; t < tokens; t++) {
                for (int c = 0; c < k; c++) {
                    if (activations.bits() == 8) {
                        codes[t * k + c] = b[(int) (t * ld + c)];
                    } else {
                        int byt = b[(int) ((t * ld + c) / 2)];
                        codes[t * k + c] = (c & 1) == 0 ? (byte) (byt << 4) >> 4 : (byte) byt >> 4;
                    }
                }
            }
            return new ActivationCodes(codes, qa.scales().toFloatArray());
        } catch (NonFiniteInputException e) {
            throw nonFinite(e);
        }
    }

    /** The Java reference of {@link #nativeCodes}: {@link OnlineTransform} then {@link TokenQuantizer}. */
    public ActivationCodes simulateCodes(float[] x, int tokens) {
        checkInput(x, tokens);
        int k = inFeatures();
        float[] xt = transformed(x, tokens);
        float[] sx = activations.scales(xt, tokens, k);
        return new ActivationCodes(activations.codes(xt, tokens, k, sx), sx);
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
        if (p1 != null) p1.close();
        if (p2 != null) p2.close();
    }

    @Override
    public String toString() {
        return "FlatQuantLinear[" + outFeatures() + " x " + inFeatures() + ", W" + weights.bits() + ", " + activations
                + (transform == null ? ", no online transform" : ", online " + transform.factorSizes()[0] + " x " + transform.factorSizes()[1]) + "]";
    }
}
