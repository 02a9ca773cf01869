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
 * <p>Thread-safe: the uploaded state is read-only and every call allocates its own activation and
 * output tensors (the context itself is thread-safe). {@link #close} frees the uploaded state; a
 * call after it throws {@link IllegalStateException}.
 */
final class NativeLinearKernel implements LinearKernel {
    private final Context ctx;
    private final QuantizedLinear layer;
    private final QuantizedTensor weights;
    private final Tensor bias;
    private final ExpansionPlan plan;
    private final Granularity activationGranularity;

    NativeLinearKernel(Context ctx, QuantizedLinear layer) {
        this.ctx = Objects.requireNonNull(ctx, "context");
        this.layer = layer;
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
        try (Tensor xt = ctx.upload(in, tokens, k);
             QuantizedTensor qa = quantize(xt, tokens);
             Tensor out = ctx.allocate(DType.F32, tokens, n)) {
            ctx.gemmInto(qa, weights, bias, out);
            float[] r = out.toFloatArray();
            System.arraycopy(r, 0, y, 0, tokens * n);
        }
    }

    /** The flattened, quantized activations as the GEMM sees them (caller closes). */
    QuantizedTensor quantize(Tensor xt, int tokens) {
        QuantizedTensor qa = ctx.allocateQuantized(tokens, plan.outCols(), layer.activationBits(), activationGranularity, 0);
        try {
            if (layer.activationMode() == QuantConfig.ActivationScale.STATIC) {
                qa.scales().copyFrom(new float[] {layer.activationScale()});
                ctx.flattenQuantizeWithScales(xt, plan, qa);
            } else {
                ctx.flattenQuantizeInto(xt, plan, qa);
            }
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
        weights.close();
        if (bias != null) bias.close();
        plan.close();
    }
}
