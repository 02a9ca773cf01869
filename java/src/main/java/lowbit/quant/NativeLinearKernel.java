package lowbit.quant;

import java.util.Arrays;
import java.util.Objects;
import lowbit.Context;
import lowbit.DType;
import lowbit.ExpansionPlan;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
import lowbit.Tensor;

/**
 * A {@link QuantizedLinear} executed by a {@link Context}: the packed weights, their scales, the
 * bias and the flatten plan (as an {@link ExpansionPlan}) are uploaded once; each call uploads the
 * activations, runs {@code lowbit_flatten_quantize} (static scale: {@link
 * Context#flattenQuantizeWithScales}; dynamic: {@link Context#flattenQuantizeInto}, per tensor or
 * per token) and {@code lowbit_gemm_dequant} with the fused epilogue, and reads the F32 result back.
 * Because lowbit.h fixes every rounding, the result equals {@link JavaLinearKernel}'s bit for bit.
 *
 * <p>The activation, quantized-activation and output tensors of a call are scratch kept for the
 * next call with the same token count ({@link lowbit.LayerScratch}); a small pool holds the most recently used
 * sets, so prefill, decode and perplexity chunks each reuse theirs instead of allocating native
 * memory per call.
 *
 * <p>Thread-safe: the uploaded state is read-only, a scratch set is taken out of the pool for the
 * duration of one call (concurrent calls get different sets, allocating one when none is free), and
 * the context itself is thread-safe. {@link #close} frees the uploaded state and the pooled scratch;
 * a call after it throws {@link IllegalStateException}.
 */
final class NativeLinearKernel implements LinearKernel {
    private final Context ctx;
    private final QuantizedLinear layer;
    private final QuantizedTensor weights;
    private final Tensor bias;
    private final ExpansionPlan plan;
    private final Granularity activationGranularity;
    /**
     * The flatten plan is the identity (column j from column j, multiplier 1): then x' = x exactly
     * (x * 1.0f == x, and a non-finite x is reported at the same column), so each call runs the
     * plain {@code lowbit_quantize}, which skips the plan's gather and its per-call validation.
     */
    private final boolean identityPlan;
    private final lowbit.ScratchPool<lowbit.LayerScratch> pool;

    /** Scratch sets kept per layer: enough for prefill, decode and a perplexity chunk size, or two threads. */
    static final int POOL_SIZE = 4;

    NativeLinearKernel(Context ctx, QuantizedLinear layer) {
        this.ctx = Objects.requireNonNull(ctx, "context");
        this.layer = layer;
        this.pool = new lowbit.ScratchPool<>(POOL_SIZE,
                tokens -> new lowbit.LayerScratch(ctx, tokens, layer.inFeatures(), layer.outFeatures(), this::allocateActivations));
        PackedMatrix w = layer.weightMatrix();
        float[] ws = layer.weightScalesView();
        QuantizedTensor qw = null;
        Tensor b = null;
        try {
            Tensor values = ctx.upload(w.data, w.bits == 8 ? DType.S8 : DType.S4, w.rows, w.cols);
            Tensor scales;
            try {
                scales = ctx.upload(ws, 1, ws.length);
            } catch (RuntimeException e) {
                values.close();
                throw e;
            }
            qw = new QuantizedTensor(values, scales, ws.length == 1 ? Granularity.PER_TENSOR : Granularity.PER_ROW, 0);
            float[] bv = layer.biasView();
            b = bv == null ? null : ctx.upload(bv, 1, bv.length);
            FlattenPlan p = layer.plan();
            this.plan = ctx.uploadPlan(p.sourceChannels(), p.multipliers(), p.inFeatures());
            this.identityPlan = isIdentity(p);
        } catch (RuntimeException e) {
            if (qw != null) qw.close();
            if (b != null) b.close();
            throw e;
        }
        this.weights = qw;
        this.bias = b;
        this.activationGranularity = layer.activationMode() == QuantConfig.ActivationScale.DYNAMIC_PER_TOKEN
                ? Granularity.PER_ROW : Granularity.PER_TENSOR;
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        if (tokens == 0) {
            return;
        }
        int k = layer.inFeatures();
        int n = layer.outFeatures();
        float[] in = x.length == tokens * k ? x : Arrays.copyOf(x, tokens * k);
        lowbit.LayerScratch s = take(tokens);
        boolean ok = false;
        try {
            s.x.copyFrom(in);
            quantizeInto(s.x, s.qa);
            ctx.gemmInto(s.qa, weights, bias, s.out);
            if (y.length == tokens * n) {
                s.out.copyTo(y);
            } else {
                float[] r = s.out.toFloatArray();
                System.arraycopy(r, 0, y, 0, tokens * n);
            }
            ok = true;
        } finally {
            if (ok) give(s);
            else s.close();
        }
    }

    private lowbit.LayerScratch take(int tokens) {
        return pool.take(tokens);
    }

    private void give(lowbit.LayerScratch s) {
        pool.give(s);
    }

    /** Scratch sets currently pooled (for tests). */
    int pooledScratch() {
        return pool.size();
    }

    /** Quantized-activation storage for {@code tokens} rows; a static scale is written once here. */
    private QuantizedTensor allocateActivations(int tokens) {
        QuantizedTensor qa = ctx.allocateQuantized(tokens, plan.outCols(), layer.activationBits(), activationGranularity, 0);
        try {
            if (layer.activationMode() == QuantConfig.ActivationScale.STATIC) {
                qa.scales().copyFrom(new float[] {layer.activationScale()});
            }
            return qa;
        } catch (RuntimeException e) {
            qa.close();
            throw e;
        }
    }

    /** Flattens and quantizes {@code xt} into {@code qa} (static: with its preset scale). */
    private void quantizeInto(Tensor xt, QuantizedTensor qa) {
        boolean fixed = layer.activationMode() == QuantConfig.ActivationScale.STATIC;
        if (identityPlan) {
            if (fixed) ctx.quantizeWithScales(xt, qa);
            else ctx.quantizeInto(xt, qa);
        } else if (fixed) {
            ctx.flattenQuantizeWithScales(xt, plan, qa);
        } else {
            ctx.flattenQuantizeInto(xt, plan, qa);
        }
    }

    /** Whether {@code p} maps column j to column j with multiplier exactly 1 and no padding. */
    static boolean isIdentity(FlattenPlan p) {
        int[] src = p.sourceChannels();
        float[] mult = p.multipliers();
        if (src.length != p.inFeatures()) return false;
        for (int j = 0; j < src.length; j++) {
            if (src[j] != j || Float.floatToRawIntBits(mult[j]) != Float.floatToRawIntBits(1.0f)) return false;
        }
        return true;
    }

    /** The flattened, quantized activations as the GEMM sees them (caller closes). */
    QuantizedTensor quantize(Tensor xt, int tokens) {
        QuantizedTensor qa = allocateActivations(tokens);
        try {
            quantizeInto(xt, qa);
            return qa;
        } catch (RuntimeException e) {
            qa.close();
            throw e;
        }
    }

    /** Quantized activation codes and scales of {@code x}, for tests against the Java simulation. */
    QuantizedLinear.Activations activations(float[] x, int tokens) {
        try (Tensor xt = ctx.upload(Arrays.copyOf(x, tokens * layer.inFeatures()), tokens, layer.inFeatures());
             QuantizedTensor qa = quantize(xt, tokens)) {
            byte[] codes = qa.values().toByteArray();
            int ld = (int) qa.values().ld();
            return new QuantizedLinear.Activations(PackedMatrix.wrap(layer.activationBits(), tokens,
                    (int) plan.outCols(), ld, codes), qa.scales().toFloatArray());
        }
    }

    @Override
    public String backend() {
        return ctx.backend().name();
    }

    @Override
    public void close() {
        pool.close();
        weights.close();
        if (bias != null) bias.close();
        plan.close();
    }
}
