package lowbit.abq;

import java.util.LinkedHashMap;
import java.util.Map;
import lowbit.Context;
import lowbit.calibrate.ClipFactors;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Var;
import lowbit.flatquant.BlockTransforms;
import lowbit.flatquant.FlatQuantBlock;
import lowbit.flatquant.FlatQuantLinear;
import lowbit.flatquant.Folding;
import lowbit.flatquant.QuantScheme;
import lowbit.model.LinearOp;

/**
 * One LLaMA block with FlatQuant's calibrated transforms, run as ABQ-LLM bit-plane layers at any
 * widths ({@link AbqFlatScheme}): the offline fold of FlatQuant ({@link Folding}: channel scales into
 * the norms, {@code P⁻ᵀ} and Pv into the weights, FP64), weights quantized per output channel with
 * the learned weight clip ({@link ClippedWeightQuantizer}, float32), and seven {@link
 * TransformedAbqLinear}s with FlatQuant's online transforms and learned activation clips.
 *
 * <p>The online transforms and activation clips are the ones FlatQuant's own inference layers carry:
 * they are taken from a {@link FlatQuantBlock} built at W8A8 (its layers are closed at once), so both
 * paths read the same float32 matrices. The weight clips are read from the calibration result by
 * their parameter names ({@code blk.N.<linear>.wclip}).
 *
 * @param attnNorm folded attn_norm weight
 * @param ffnNorm folded ffn_norm weight
 * @param layers the block's layers by short name ({@code attn_q}, ...); the caller owns (closes) them
 */
public record AbqFlatBlock(float[] attnNorm, float[] ffnNorm, Map<String, TransformedAbqLinear> layers) {
    /**
     * Builds block {@code block} (FP64, unfolded) whose calibrated parameters are loaded in {@code
     * transforms}; {@code params} is the calibration result holding {@code prefix + linear +
     * ".wclip"}; layers on {@code ctx}.
     */
    public static AbqFlatBlock build(Context ctx, LlamaBlock block, BlockTransforms transforms, Map<String, double[]> params, String prefix,
                                     AbqFlatScheme scheme) {
        return build(ctx, block, transforms, params, prefix, scheme, null);
    }

    /**
     * As above; with {@code hessians} (not null) the weight codes are {@link GptqRounding}'s on the
     * round-to-nearest grid, for the input second moments {@code hessians.get(inputOf(linear))} (k × k,
     * of the inputs the layer quantizes: after the online transform and the clip, see {@link
     * TransformedAbqLinear#prepared}).
     */
    public static AbqFlatBlock build(Context ctx, LlamaBlock block, BlockTransforms transforms, Map<String, double[]> params, String prefix,
                                     AbqFlatScheme scheme, Map<String, double[]> hessians) {
        if (ctx == null) throw new IllegalArgumentException("ABQ layers run on a native context (lowbit_bitplane_gemm); got none");
        if (block == null || transforms == null || params == null || prefix == null || scheme == null) {
            throw new IllegalArgumentException("a block, its transforms, the calibration result, the parameter prefix and a scheme are required");
        }
        FlatQuantBlock reference = FlatQuantBlock.build(ctx, block, transforms, QuantScheme.w8a8());
        Map<String, TransformedAbqLinear> layers = new LinkedHashMap<>();
        try {
            LlamaBlock folded = Folding.fold(block, transforms);
            for (String l : block.linears()) {
                FlatQuantLinear fq = (FlatQuantLinear) reference.layers().get(l);
                Var w = folded.weight(l);
                float[] wf = toFloat(w.value());
                IntCodes codes = ClippedWeightQuantizer.quantize(wf, w.rows(), w.cols(), scheme.weightQuantizer(),
                        weightClip(params, prefix + l + ".wclip", w.rows()));
                if (hessians != null) {
                    double[] h = hessians.get(inputOf(l));
                    if (h == null) throw new IllegalArgumentException("GPTQ needs the input second moments of " + prefix + inputOf(l));
                    codes = GptqRounding.quantize(wf, w.rows(), w.cols(), scheme.weightQuantizer(), codes, h);
                }
                AbqLinear inner = AbqLinear.of(ctx, codes, fq.bias(), scheme.activationQuantizer());
                layers.put(l, TransformedAbqLinear.of(fq.transform(), fq.activations().clipHi(), fq.activations().clipLo(), inner));
            }
        } catch (RuntimeException e) {
            for (LinearOp op : layers.values()) op.close();
            throw e;
        } finally {
            for (LinearOp op : reference.layers().values()) op.close();
        }
        return new AbqFlatBlock(reference.attnNorm(), reference.ffnNorm(), layers);
    }

    /** The layer whose input {@code linear} reads (q/k/v read attn_q's, gate/up read ffn_gate's): the key of its second moments. */
    public static String inputOf(String linear) {
        switch (linear) {
            case "attn_q":
            case "attn_k":
            case "attn_v":
                return "attn_q";
            case "ffn_gate":
            case "ffn_up":
                return "ffn_gate";
            case "attn_output":
            case "ffn_down":
                return linear;
            default:
                throw new IllegalArgumentException("not a LLaMA block linear layer: " + linear);
        }
    }

    /** The learned clip factors {σ(γ_r), σ(β_r)} per output channel of the calibration parameter {@code name}. */
    private static double[] weightClip(Map<String, double[]> params, String name, int rows) {
        double[] logits = params.get(name);
        if (logits == null) throw new IllegalArgumentException("the calibration result has no parameter " + name);
        if (logits.length != 2 * rows) {
            throw new IllegalArgumentException(name + " holds " + logits.length + " values; per-channel clipping of " + rows + " rows needs " + 2 * rows);
        }
        ClipFactors clip = new ClipFactors(name, rows, ClipFactors.DEFAULT_INIT);
        clip.param().set(logits);
        return clip.factors();
    }

    private static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }
}
