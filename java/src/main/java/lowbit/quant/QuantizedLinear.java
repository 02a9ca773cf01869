package lowbit.quant;

import lowbit.model.LinearOp;

/**
 * A linear layer {@code y = x Wᵀ + b} run as one per-tensor-quantized integer GEMM over flattened
 * channels.
 *
 * <p>Per call, for {@code tokens} rows of {@code x} (K wide): flatten with the {@link FlattenPlan}
 * ({@code x'[t][j'] = x[t][source[j']] * multiplier[j']}, K' wide); quantize {@code x'} per tensor
 * with {@code s_a = amax / qmax} where amax is the calibrated flattened max (static) or {@code max
 * |x'|} of this call (dynamic); {@code acc = q(x') · Wqᵀ} in exact int32; {@code y = ((float) acc *
 * s_a) * s_w[n] + b[n]} in float32. {@code Wq} is the expanded weight matrix {@code W'} (N x K',
 * column j repeated {@code k_j} times, times the plan's smoothing scale) quantized symmetrically with
 * per-output-channel or per-tensor scales {@code s_w}, stored packed as lowbit.h's S8 or S4. All
 * rounding follows lowbit.h, so a native backend reproduces the integer part bit for bit.
 *
 * <p>Activations and weights may use different widths among the pairs lowbit.h multiplies: W8A8,
 * W4A8 and W4A4.
 */
public final class QuantizedLinear implements LinearOp {
    /** Pass as the activation amax to quantize activations dynamically (per call). */
    public static final float DYNAMIC = Float.NaN;

    private final FlattenPlan plan;
    private final int outFeatures;
    private final PackedMatrix weights;
    private final float[] weightScales;
    private final int activationBits;
    private final float activationScale;
    private final float[] bias;
    private final IntegerGemm gemm;

    QuantizedLinear(FlattenPlan plan, int outFeatures, PackedMatrix weights, float[] weightScales, int activationBits,
                    float activationScale, float[] bias, IntegerGemm gemm) {
        SymmetricQuant.qmax(activationBits);
        if (weights.bits == 8 && activationBits == 4) {
            throw new IllegalArgumentException("W8A4 is not a GEMM lowbit.h supports (S8xS8, S8xS4 weights, S4xS4)");
        }
        if (weights.rows != outFeatures || weights.cols != plan.expandedFeatures()) {
            throw new ShapeMismatchException("packed weights are " + weights.rows + " x " + weights.cols + ", expected "
                    + outFeatures + " x " + plan.expandedFeatures());
        }
        if (bias != null && bias.length != outFeatures) {
            throw new ShapeMismatchException("bias: expected " + outFeatures + " values, got " + bias.length);
        }
        this.plan = plan;
        this.outFeatures = outFeatures;
        this.weights = weights;
        this.weightScales = weightScales;
        this.activationBits = activationBits;
        this.activationScale = activationScale;
        this.bias = bias == null ? null : bias.clone();
        this.gemm = gemm;
    }

    /**
     * Quantizes {@code weights} ({@code outFeatures x inFeatures}, row-major) for execution under
     * {@code plan} at {@code precision} (INT4 or INT8 for both operands), without clipping.
     *
     * @param activationAmax the calibrated per-tensor max of the flattened activations (see {@link
     *     FlattenPlan#flattenedAbsMax}), or {@link #DYNAMIC}
     */
    public static QuantizedLinear create(float[] weights, float[] bias, int outFeatures, int inFeatures, FlattenPlan plan,
                                         Precision precision, boolean perOutputChannel, float activationAmax) {
        if (!precision.isInteger()) {
            throw new IllegalArgumentException("QuantizedLinear needs INT4 or INT8, got " + precision);
        }
        return create(weights, bias, outFeatures, inFeatures, plan, precision.bits(), precision.bits(), perOutputChannel,
                null, activationAmax);
    }

    static QuantizedLinear create(float[] weights, float[] bias, int outFeatures, int inFeatures, FlattenPlan plan,
                                  int weightBits, int activationBits, boolean perOutputChannel, float[] clip,
                                  float activationAmax) {
        if (plan.inFeatures() != inFeatures) {
            throw new ShapeMismatchException("flatten plan is for " + plan.inFeatures() + " input features, layer has " + inFeatures);
        }
        if (outFeatures < 1 || weights.length != (long) outFeatures * inFeatures) {
            throw new ShapeMismatchException("weights must be " + outFeatures + " x " + inFeatures + " = "
                    + ((long) outFeatures * inFeatures) + " floats, got " + weights.length);
        }
        if (!Float.isNaN(activationAmax) && !(activationAmax >= 0 && Float.isFinite(activationAmax))) {
            throw new NonFiniteValueException("static activation amax must be finite and >= 0, got " + activationAmax);
        }
        float[] ratios = clip;
        if (ratios == null) {
            ratios = new float[perOutputChannel ? outFeatures : 1];
            java.util.Arrays.fill(ratios, 1f);
        }
        float[] expanded = plan.expandWeights(weights, outFeatures);
        WeightQuantizer.Quantized q = WeightQuantizer.quantize(expanded, outFeatures, plan.expandedFeatures(), weightBits,
                perOutputChannel, ratios);
        float activationScale = Float.isNaN(activationAmax) ? Float.NaN : SymmetricQuant.scale(activationAmax, activationBits);
        return new QuantizedLinear(plan, outFeatures, q.codes(), q.scales(), activationBits, activationScale, bias,
                JavaIntegerGemm.INSTANCE);
    }

    /** The same layer executing its integer GEMM and epilogue through {@code other}. */
    QuantizedLinear withGemm(IntegerGemm other) {
        return new QuantizedLinear(plan, outFeatures, weights, weightScales, activationBits, activationScale, bias, other);
    }

    @Override
    public int inFeatures() {
        return plan.inFeatures();
    }

    @Override
    public int outFeatures() {
        return outFeatures;
    }

    public FlattenPlan plan() {
        return plan;
    }

    public int weightBits() {
        return weights.bits;
    }

    public int activationBits() {
        return activationBits;
    }

    public boolean isDynamic() {
        return Float.isNaN(activationScale);
    }

    /** The static per-tensor activation scale; NaN when dynamic. */
    public float activationScale() {
        return activationScale;
    }

    /** Weight scales: one per output channel or one for the tensor (a copy). */
    public float[] weightScales() {
        return weightScales.clone();
    }

    /** Packed weights in lowbit.h layout: N rows of {@link #weightLd()} elements (a copy). */
    public byte[] packedWeights() {
        return weights.data.clone();
    }

    /** Leading dimension of the packed weights in elements (even for S4). */
    public int weightLd() {
        return weights.ld;
    }

    PackedMatrix weightMatrix() {
        return weights;
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        int k = plan.inFeatures();
        if (tokens < 0 || x.length < (long) tokens * k || y.length < (long) tokens * outFeatures) {
            throw new ShapeMismatchException("forward of " + tokens + " tokens needs x of >= " + ((long) tokens * k)
                    + " and y of >= " + ((long) tokens * outFeatures) + " floats, got " + x.length + " and " + y.length);
        }
        float[] scale = new float[1];
        PackedMatrix a = quantizeActivations(x, tokens, scale);
        gemm.gemmDequant(a, weights, scale[0], weightScales, bias, y);
    }

    /**
     * Flatten and quantize, what a fused native flatten-and-quantize kernel computes; writes the
     * activation scale used to {@code scaleOut[0]}.
     */
    PackedMatrix quantizeActivations(float[] x, int tokens, float[] scaleOut) {
        int k = plan.inFeatures();
        int kp = plan.expandedFeatures();
        for (int i = 0; i < tokens * k; i++) {
            if (!Float.isFinite(x[i])) {
                throw new NonFiniteValueException("quantized linear input " + x[i] + " at token " + (i / k) + ", channel "
                        + (i % k) + " is not finite");
            }
        }
        float[] flat = new float[tokens * kp];
        float amax = 0f;
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < kp; j++) {
                float v = x[t * k + plan.sourceOf(j)] * plan.multiplierOf(j);
                flat[t * kp + j] = v;
                amax = Math.max(amax, Math.abs(v));
            }
        }
        float s = isDynamic() ? SymmetricQuant.scale(amax, activationBits) : activationScale;
        int qmax = SymmetricQuant.qmax(activationBits);
        PackedMatrix a = PackedMatrix.allocate(activationBits, tokens, kp);
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < kp; j++) {
                a.set(t, j, SymmetricQuant.quantize(flat[t * kp + j], s, qmax));
            }
        }
        scaleOut[0] = s;
        return a;
    }
}
