package lowbit.quant;

import java.util.Objects;
import lowbit.Context;
import lowbit.model.LinearOp;

/**
 * A linear layer {@code y = x Wᵀ + b} run as one integer GEMM over flattened channels.
 *
 * <p>Per call, for {@code tokens} rows of {@code x} (K wide): flatten with the {@link FlattenPlan}
 * ({@code x'[t][j'] = x[t][source[j']] * multiplier[j']}, K' wide); quantize {@code x'} with {@code
 * s_a = amax / qmax}, where amax is the calibrated flattened max (static per tensor), {@code max
 * |x'|} of this call (dynamic per tensor) or of each token row (dynamic per token); {@code acc =
 * q(x') · Wqᵀ} in exact int32; {@code y = ((float) acc * s_a[t]) * s_w[n] + b[n]} in float32. {@code
 * Wq} is the expanded weight matrix {@code W'} (N x K', column j repeated {@code k_j} times, times
 * the plan's smoothing scale) quantized symmetrically with per-output-channel or per-tensor scales
 * {@code s_w}, stored packed as lowbit.h's S8 or S4. All rounding follows lowbit.h.
 *
 * <p>Execution goes through a {@link LinearKernel}: {@link #create} gives the Java reference;
 * {@link #on(Context)} gives the same layer on a native backend (weights, scales and plan uploaded
 * once), equal bit for bit. Activations and weights may use different widths among the pairs
 * lowbit.h multiplies: W8A8, W4A8 and W4A4.
 *
 * <p>Thread-safe: {@link #forward} may run concurrently from several threads. {@link #close} frees
 * the native resources of a layer made by {@link #on} (a no-op for the Java kernel); forward after
 * close throws {@link IllegalStateException}.
 */
public final class QuantizedLinear implements LinearOp {
    /** Pass as the activation amax to quantize activations dynamically (per call). */
    public static final float DYNAMIC = Float.NaN;

    /** Quantized activations: codes (tokens x K') and their scales (1, or one per token). */
    record Activations(PackedMatrix codes, float[] scales) {}

    private final FlattenPlan plan;
    private final int outFeatures;
    private final PackedMatrix weights;
    private final float[] weightScales;
    private final int activationBits;
    private final QuantConfig.ActivationScale activationMode;
    private final float activationScale;
    private final float[] bias;
    private final LinearKernel kernel;

    private QuantizedLinear(FlattenPlan plan, int outFeatures, PackedMatrix weights, float[] weightScales,
                            int activationBits, QuantConfig.ActivationScale activationMode, float activationScale,
                            float[] bias, Context ctx) {
        SymmetricQuant.qmax(activationBits);
        Objects.requireNonNull(activationMode, "activation mode");
        if (weights.bits == 8 && activationBits == 4) {
            throw new IllegalArgumentException("W8A4 is not a GEMM lowbit.h supports (S8xS8, S8xS4 weights, S4xS4)");
        }
        if (weights.rows != outFeatures || weights.cols != plan.expandedFeatures()) {
            throw new ShapeMismatchException("packed weights are " + weights.rows + " x " + weights.cols + ", expected "
                    + outFeatures + " x " + plan.expandedFeatures());
        }
        if (weightScales.length != 1 && weightScales.length != outFeatures) {
            throw new ShapeMismatchException("weight scales: expected 1 or " + outFeatures + ", got " + weightScales.length);
        }
        for (float s : weightScales) {
            if (!(s > 0) || !Float.isFinite(s)) {
                throw new NonFiniteValueException("weight scales must be finite and > 0, got " + s);
            }
        }
        if (activationMode == QuantConfig.ActivationScale.STATIC) {
            if (!(activationScale > 0) || !Float.isFinite(activationScale)) {
                throw new NonFiniteValueException("static activation scale must be finite and > 0, got " + activationScale);
            }
        } else if (!Float.isNaN(activationScale)) {
            throw new IllegalArgumentException("a dynamic layer has no static activation scale, got " + activationScale);
        }
        if (bias != null && bias.length != outFeatures) {
            throw new ShapeMismatchException("bias: expected " + outFeatures + " values, got " + bias.length);
        }
        this.plan = plan;
        this.outFeatures = outFeatures;
        this.weights = weights;
        this.weightScales = weightScales;
        this.activationBits = activationBits;
        this.activationMode = activationMode;
        this.activationScale = activationScale;
        this.bias = bias;
        this.kernel = ctx == null ? new JavaLinearKernel(this) : new NativeLinearKernel(ctx, this);
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

    /** As the public {@code create}, with separate widths and clip ratios; NaN amax = dynamic per tensor. */
    static QuantizedLinear create(float[] weights, float[] bias, int outFeatures, int inFeatures, FlattenPlan plan,
                                  int weightBits, int activationBits, boolean perOutputChannel, float[] clip,
                                  float activationAmax) {
        return create(weights, bias, outFeatures, inFeatures, plan, weightBits, activationBits, perOutputChannel, clip,
                Float.isNaN(activationAmax) ? QuantConfig.ActivationScale.DYNAMIC : QuantConfig.ActivationScale.STATIC,
                activationAmax);
    }

    /**
     * The general form: {@code mode} STATIC uses {@code activationAmax} (finite, >= 0), the dynamic
     * modes ignore it; {@code clip} is null (no clipping) or one ratio per row (per channel) or one.
     */
    public static QuantizedLinear create(float[] weights, float[] bias, int outFeatures, int inFeatures, FlattenPlan plan,
                                         int weightBits, int activationBits, boolean perOutputChannel, float[] clip,
                                         QuantConfig.ActivationScale mode, float activationAmax) {
        if (plan.inFeatures() != inFeatures) {
            throw new ShapeMismatchException("flatten plan is for " + plan.inFeatures() + " input features, layer has " + inFeatures);
        }
        if (outFeatures < 1 || weights.length != (long) outFeatures * inFeatures) {
            throw new ShapeMismatchException("weights must be " + outFeatures + " x " + inFeatures + " = "
                    + ((long) outFeatures * inFeatures) + " floats, got " + weights.length);
        }
        float activationScale = Float.NaN;
        if (mode == QuantConfig.ActivationScale.STATIC) {
            if (!(activationAmax >= 0 && Float.isFinite(activationAmax))) {
                throw new NonFiniteValueException("static activation amax must be finite and >= 0, got " + activationAmax);
            }
            activationScale = SymmetricQuant.scale(activationAmax, activationBits);
        }
        float[] ratios = clip;
        if (ratios == null) {
            ratios = new float[perOutputChannel ? outFeatures : 1];
            java.util.Arrays.fill(ratios, 1f);
        }
        float[] expanded = plan.expandWeights(weights, outFeatures);
        WeightQuantizer.Quantized q = WeightQuantizer.quantize(expanded, outFeatures, plan.expandedFeatures(), weightBits,
                perOutputChannel, ratios);
        return new QuantizedLinear(plan, outFeatures, q.codes(), q.scales(), activationBits, mode, activationScale,
                bias == null ? null : bias.clone(), null);
    }

    /**
     * A layer from already-quantized parts (a quantized model file): packed weights in lowbit.h
     * layout ({@code outFeatures} rows of {@code weightLd} elements, K' = plan's expanded width),
     * 1 or {@code outFeatures} weight scales, the activation mode and static scale (NaN when
     * dynamic). Runs on the Java kernel.
     */
    public static QuantizedLinear fromParts(FlattenPlan plan, int outFeatures, int weightBits, int weightLd,
                                            byte[] packedWeights, float[] weightScales, int activationBits,
                                            QuantConfig.ActivationScale mode, float activationScale, float[] bias) {
        PackedMatrix w = PackedMatrix.wrap(weightBits, outFeatures, plan.expandedFeatures(), weightLd, packedWeights.clone());
        return new QuantizedLinear(plan, outFeatures, w, weightScales.clone(), activationBits, mode, activationScale,
                bias == null ? null : bias.clone(), null);
    }

    /** The same layer executed by {@code ctx} (its weights, scales and plan are uploaded now); close it when done. */
    public QuantizedLinear on(Context ctx) {
        return new QuantizedLinear(plan, outFeatures, weights, weightScales, activationBits, activationMode,
                activationScale, bias, Objects.requireNonNull(ctx, "context"));
    }

    /** Where the layer runs: "Java" or the native backend's name. */
    public String backend() {
        return kernel.backend();
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

    public QuantConfig.ActivationScale activationMode() {
        return activationMode;
    }

    public boolean isDynamic() {
        return activationMode != QuantConfig.ActivationScale.STATIC;
    }

    /** The static per-tensor activation scale; NaN when dynamic. */
    public float activationScale() {
        return activationScale;
    }

    /** Weight scales: one per output channel or one for the tensor (a copy). */
    public float[] weightScales() {
        return weightScales.clone();
    }

    /** The bias (a copy), or null. */
    public float[] bias() {
        return bias == null ? null : bias.clone();
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

    float[] weightScalesView() {
        return weightScales;
    }

    float[] biasView() {
        return bias;
    }

    LinearKernel kernel() {
        return kernel;
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        int k = plan.inFeatures();
        if (tokens < 0 || x.length < (long) tokens * k || y.length < (long) tokens * outFeatures) {
            throw new ShapeMismatchException("forward of " + tokens + " tokens needs x of >= " + ((long) tokens * k)
                    + " and y of >= " + ((long) tokens * outFeatures) + " floats, got " + x.length + " and " + y.length);
        }
        kernel.forward(x, tokens, y);
    }

    @Override
    public void close() {
        kernel.close();
    }

    /**
     * Flatten and quantize in Java, what the native flatten-and-quantize kernel computes: codes
     * ({@code tokens x K'}) and the scale(s) used.
     */
    Activations quantizeActivations(float[] x, int tokens) {
        int k = plan.inFeatures();
        int kp = plan.expandedFeatures();
        for (int i = 0; i < tokens * k; i++) {
            if (!Float.isFinite(x[i])) {
                throw new NonFiniteValueException("quantized linear input " + x[i] + " at token " + (i / k) + ", channel "
                        + (i % k) + " is not finite");
            }
        }
        float[] flat = new float[tokens * kp];
        boolean perToken = activationMode == QuantConfig.ActivationScale.DYNAMIC_PER_TOKEN;
        float[] rowMax = new float[perToken ? tokens : 1];
        for (int t = 0; t < tokens; t++) {
            int r = perToken ? t : 0;
            for (int j = 0; j < kp; j++) {
                float v = x[t * k + plan.sourceOf(j)] * plan.multiplierOf(j);
                flat[t * kp + j] = v;
                rowMax[r] = Math.max(rowMax[r], Math.abs(v));
            }
        }
        float[] scales = new float[rowMax.length];
        for (int r = 0; r < scales.length; r++) {
            scales[r] = isDynamic() ? SymmetricQuant.scale(rowMax[r], activationBits) : activationScale;
        }
        int qmax = SymmetricQuant.qmax(activationBits);
        PackedMatrix a = PackedMatrix.allocate(activationBits, tokens, kp);
        for (int t = 0; t < tokens; t++) {
            float s = scales[perToken ? t : 0];
            for (int j = 0; j < kp; j++) {
                a.set(t, j, SymmetricQuant.quantize(flat[t * kp + j], s, qmax));
            }
        }
        return new Activations(a, scales);
    }
}
