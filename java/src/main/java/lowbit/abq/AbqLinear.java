package lowbit.abq;

import java.util.Objects;
import lowbit.BitPlaneTensor;
import lowbit.Context;
import lowbit.DType;
import lowbit.Tensor;
import lowbit.model.LinearOp;

/**
 * An ABQ-LLM linear layer {@code y = x·Wᵀ (+ b)} on a native context: the weights are integer codes
 * (per output channel: {@link WeightQuantizer} with group 0) packed into bit planes once and kept on
 * the backend; each {@link #forward} uploads x, quantizes it per token to bit planes ({@code
 * lowbit_bitplane_quantize}) and runs {@code lowbit_bitplane_gemm} with the zero-point terms and
 * the float32 epilogue {@code ((float)acc·sx)·sw (+ b)}. {@link #simulate} computes the same in
 * Java — {@link ActivationQuantizer}, the exact integer sum {@code Σ (x−zx)(w−zw)} and the epilogue —
 * and equals {@link #forward} bit for bit (F32 output). {@link #forward} may run concurrently.
 */
public final class AbqLinear implements LinearOp {
    private final Context ctx;
    private final IntCodes weights;
    private final ActivationQuantizer activations;
    private final float[] bias;
    private final BitPlaneTensor w;
    private final Tensor biasTensor;

    private AbqLinear(Context ctx, IntCodes weights, float[] bias, ActivationQuantizer activations) {
        this.ctx = Objects.requireNonNull(ctx, "ctx");
        this.weights = Objects.requireNonNull(weights, "weights");
        this.activations = Objects.requireNonNull(activations, "activations");
        if (weights.group() != 0) {
            throw new IllegalArgumentException("the bit-plane GEMM takes one weight scale per output channel; "
                    + "per-group weights (G" + weights.group() + ") are for simulation only");
        }
        int n = weights.rows();
        if (bias != null && bias.length != n) {
            throw new IllegalArgumentException("bias needs " + n + " values, got " + bias.length);
        }
        this.bias = bias == null ? null : bias.clone();
        BitPlaneTensor uploaded = ctx.uploadBitPlanes(weights.codes(), n, weights.cols(), weights.planes(),
                weights.isSigned(), weights.zeroPoints(), weights.scales());
        try {
            this.biasTensor = bias == null ? null : ctx.upload(bias, 1, n);
        } catch (RuntimeException e) {
            uploaded.close();
            throw e;
        }
        this.w = uploaded;
    }

    /** Quantizes an FP layer ({@code w}: {@code n × k}, {@code bias} null or n values) and uploads it. */
    public static AbqLinear create(Context ctx, float[] w, float[] bias, int n, int k, WeightQuantizer wq,
                                   ActivationQuantizer aq) {
        Objects.requireNonNull(wq, "wq");
        return new AbqLinear(ctx, wq.quantize(w, n, k), bias, aq);
    }

    /** A layer from already-quantized per-channel weights (e.g. after calibration). */
    public static AbqLinear of(Context ctx, IntCodes weights, float[] bias, ActivationQuantizer aq) {
        return new AbqLinear(ctx, weights, bias, aq);
    }

    @Override
    public int inFeatures() {
        return weights.cols();
    }

    @Override
    public int outFeatures() {
        return weights.rows();
    }

    public IntCodes weights() {
        return weights;
    }

    public ActivationQuantizer activations() {
        return activations;
    }

    /** The bias (a copy), or null. */
    public float[] bias() {
        return bias == null ? null : bias.clone();
    }

    private void checkInput(float[] x, int tokens) {
        Objects.requireNonNull(x, "x");
        if (tokens < 1 || x.length < (long) tokens * inFeatures()) {
            throw new IllegalArgumentException("x needs " + (long) tokens * inFeatures() + " values for " + tokens
                    + " tokens, got " + x.length);
        }
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        checkInput(x, tokens);
        int n = outFeatures();
        if (y.length < (long) tokens * n) {
            throw new IllegalArgumentException("y needs " + (long) tokens * n + " values, got " + y.length);
        }
        try (Tensor out = run(x, tokens, DType.F32)) {
            System.arraycopy(out.toFloatArray(), 0, y, 0, tokens * n);
        }
    }

    /**
     * The native integer part alone: the low 32 bits of {@code acc[t][j]} (S32 output of the GEMM;
     * exact while |acc| < 2^31).
     */
    public int[] accumulators(float[] x, int tokens) {
        checkInput(x, tokens);
        try (Tensor out = run(x, tokens, DType.S32)) {
            return out.toIntArray();
        }
    }

    private Tensor run(float[] x, int tokens, DType outType) {
        int k = inFeatures();
        float[] xs = x.length == tokens * k ? x : java.util.Arrays.copyOf(x, tokens * k);
        try (Tensor xt = ctx.upload(xs, tokens, k);
             BitPlaneTensor qx = ctx.quantizeBitPlanes(xt, activations.bits(), activations.isAsymmetric())) {
            Tensor out = ctx.allocate(outType, tokens, outFeatures());
            try {
                ctx.gemmBitPlanesInto(qx, w, biasTensor, out);
                return out;
            } catch (RuntimeException e) {
                out.close();
                throw e;
            }
        }
    }

    /** The exact integer part in Java: {@code acc[t][j] = Σ_c (qx − zx)(qw − zw)} (long). */
    public long[] simulateAccumulators(float[] x, int tokens) {
        checkInput(x, tokens);
        return integerProduct(activations.quantize(x, tokens, inFeatures()), weights);
    }

    static long[] integerProduct(IntCodes a, IntCodes b) {
        int m = a.rows(), n = b.rows(), k = a.cols();
        long[] acc = new long[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                long s = 0;
                for (int c = 0; c < k; c++) {
                    s += (long) a.value(i, c) * b.value(j, c);
                }
                acc[i * n + j] = s;
            }
        }
        return acc;
    }

    /** {@link #forward} in Java, bit for bit: the integer part, then {@code ((float)acc·sx)·sw (+ b)}. */
    public float[] simulate(float[] x, int tokens) {
        checkInput(x, tokens);
        IntCodes qa = activations.quantize(x, tokens, inFeatures());
        long[] acc = integerProduct(qa, weights);
        int n = outFeatures();
        float[] y = new float[tokens * n];
        for (int t = 0; t < tokens; t++) {
            float sx = qa.scale(t, 0);
            for (int j = 0; j < n; j++) {
                float v = (float) acc[t * n + j] * sx;
                v = v * weights.scale(j, 0);
                y[t * n + j] = bias == null ? v : v + bias[j];
            }
        }
        return y;
    }

    @Override
    public void close() {
        w.close();
        if (biasTensor != null) {
            biasTensor.close();
        }
    }

    @Override
    public String toString() {
        return "AbqLinear[" + outFeatures() + " x " + inFeatures() + ", W" + weights.planes() + "-plane"
                + (weights.isSigned() ? " signed" : " unsigned") + ", " + activations + "]";
    }
}
