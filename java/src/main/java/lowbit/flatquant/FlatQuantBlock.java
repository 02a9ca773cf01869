package lowbit.flatquant;

import java.util.LinkedHashMap;
import java.util.Map;
import lowbit.Context;
import lowbit.Granularity;
import lowbit.calibrate.AffineFactor;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.QuantSpec;
import lowbit.calibrate.Site;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;
import lowbit.model.LinearOp;
import lowbit.quant.Gptq;

/**
 * One calibrated LLaMA block turned into what the model graph runs: the offline parts folded
 * ({@link Folding}: channel scales into the RMSNorm weights and ffn_up's rows, every {@code P⁻ᵀ}
 * and Pv into the weights, in FP64), the seven {@link FlatQuantLinear}s with their online
 * transforms ({@code P_qkv} before q/k/v, {@code P_up} before gate/up, {@code P_down} before down,
 * {@code Po ⊗ I} before attn_output) and learned clips, and, when the scheme quantizes the KV cache,
 * the block's {@link FlatQuantKvCodec.Layer}. The transform matrices are computed once in FP64 and
 * rounded to float32.
 *
 * @param attnNorm folded attn_norm weight
 * @param ffnNorm folded ffn_norm weight
 * @param layers the block's layers by short name ({@code attn_q}, ...); the caller owns (closes) them
 * @param kv the KV-cache part, null when the scheme keeps the cache in full precision
 */
public record FlatQuantBlock(float[] attnNorm, float[] ffnNorm, Map<String, LinearOp> layers, FlatQuantKvCodec.Layer kv) {
    /** Folds and quantizes {@code block} with its calibrated {@code transforms} under {@code scheme}; layers on {@code ctx}; weights rounded to nearest. */
    public static FlatQuantBlock build(Context ctx, LlamaBlock block, BlockTransforms transforms, QuantScheme scheme) {
        return build(ctx, block, transforms, scheme, null);
    }

    /**
     * As {@link #build(Context, LlamaBlock, BlockTransforms, QuantScheme)}; with {@code gptq} non-null
     * the layers are {@link GptqPendingLinear}s, whose weights GPTQ rounds from the first input they
     * see (one pass of the model over calibration text, then {@link GptqPendingLinear#resolved});
     * layers reading one input share its Hessian.
     */
    public static FlatQuantBlock build(Context ctx, LlamaBlock block, BlockTransforms transforms, QuantScheme scheme, Gptq.Options gptq) {
        if (ctx == null) throw new IllegalArgumentException("FlatQuant layers run on a native context (lowbit_quantize + lowbit_gemm_dequant); got none");
        check(scheme);
        LlamaBlock folded = Folding.fold(block, transforms);
        Tape tape = Tape.fp64();
        int heads = block.config().headCount(), hd = block.config().headDim();
        Map<Site, OnlineTransform> online = new LinkedHashMap<>();
        for (Site s : new Site[] {Site.ATTN_IN, Site.FFN_IN, Site.FFN_DOWN_IN}) {
            AffineFactor[] f = transforms.kroneckerFactors(s);
            online.put(s, new OnlineTransform(matrix(tape, f[0], 0), f[0].size(), matrix(tape, f[1], 0), f[1].size()));
        }
        online.put(Site.ATTN_OUT_IN, new OnlineTransform(matrix(tape, transforms.o, 0), heads, null, hd));
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        Map<Site, GptqPendingLinear.SharedHessian> hessians = new LinkedHashMap<>();
        if (gptq != null) {
            Map<Site, Integer> readers = new LinkedHashMap<>();
            for (String l : block.linears()) readers.merge(inputOf(l), 1, Integer::sum);
            readers.forEach((s, n) -> hessians.put(s, new GptqPendingLinear.SharedHessian(n)));
        }
        try {
            for (String l : block.linears()) {
                Site site = inputOf(l);
                Var w = folded.weight(l);
                double[] a = transforms.activationClip(site).factors();
                Var b = folded.bias(l);
                float[] bias = b == null ? null : toFloat(b.value());
                TokenQuantizer act = new TokenQuantizer(scheme.activations().bits(), a[0], a[1]);
                double[] clip = transforms.weightClip(l).factors();
                if (gptq != null) {
                    layers.put(l, new GptqPendingLinear(ctx, l, w.value().clone(), w.rows(), w.cols(), scheme.weights().bits(), clip, bias, act,
                            online.get(site), hessians.get(site), gptq));
                } else {
                    ClippedWeights cw = ClippedWeights.quantize(w.value(), w.rows(), w.cols(), scheme.weights().bits(), clip);
                    layers.put(l, FlatQuantLinear.of(ctx, cw, bias, act, online.get(site)));
                }
            }
        } catch (RuntimeException e) {
            for (LinearOp op : layers.values()) op.close();
            throw e;
        }
        FlatQuantKvCodec.Layer kv = null;
        if (scheme.kv() != null) {
            kv = new FlatQuantKvCodec.Layer(toFloat(matrix(tape, transforms.k, 0)), toFloat(matrix(tape, transforms.k, 1)),
                    transforms.activationClip(Site.KEY).factors(), transforms.activationClip(Site.VALUE).factors());
        }
        return new FlatQuantBlock(toFloat(folded.attnNorm().value()), toFloat(folded.ffnNorm().value()), layers, kv);
    }

    /** The quantizers this inference path implements: symmetric per-channel weights, symmetric per-token activations (4 or 8 bits), KV asymmetric per group or none. */
    static void check(QuantScheme scheme) {
        if (scheme == null) throw new IllegalArgumentException("a quantization scheme is required");
        QuantSpec w = scheme.weights(), a = scheme.activations();
        if (!w.symmetric() || w.granularity() != Granularity.PER_ROW || (w.bits() != 4 && w.bits() != 8)) {
            throw new IllegalArgumentException(scheme.name() + ": FlatQuant layers take INT4/INT8 symmetric per-channel weights, got " + w);
        }
        if (!a.symmetric() || a.granularity() != Granularity.PER_ROW || (a.bits() != 4 && a.bits() != 8)) {
            throw new IllegalArgumentException(scheme.name() + ": FlatQuant layers take INT4/INT8 symmetric per-token activations, got " + a);
        }
        if (scheme.kv() != null && (scheme.kv().symmetric() || scheme.kv().granularity() != Granularity.PER_GROUP)) {
            throw new IllegalArgumentException(scheme.name() + ": the KV cache quantizer must be asymmetric per group, got " + scheme.kv());
        }
    }

    /** The site a LLaMA linear layer reads. */
    static Site inputOf(String linear) {
        switch (linear) {
            case "attn_q":
            case "attn_k":
            case "attn_v":
                return Site.ATTN_IN;
            case "attn_output":
                return Site.ATTN_OUT_IN;
            case "ffn_gate":
            case "ffn_up":
                return Site.FFN_IN;
            case "ffn_down":
                return Site.FFN_DOWN_IN;
            default:
                throw new IllegalArgumentException("not a LLaMA block linear layer: " + linear);
        }
    }

    /** {@code P} (which 0) or {@code P⁻ᵀ} (which 1) of a factor, in FP64. */
    private static double[] matrix(Tape tape, AffineFactor f, int which) {
        return f.matrixAndInverseTranspose(tape)[which].value().clone();
    }

    private static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }
}
