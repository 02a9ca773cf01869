package lowbit.abq;

import lowbit.calibrate.BlockHooks;
import lowbit.calibrate.BlockMethod;
import lowbit.calibrate.BlockSetup;
import lowbit.calibrate.DecoderBlock;
import lowbit.calibrate.FakeQuant;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.MatrixOps;
import lowbit.calibrate.Site;
import lowbit.calibrate.SiteStats;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;

/**
 * ABQ-LLM's block-wise calibration ({@code quantize/abq_llm.py}, OmniQuant-based) as a {@link
 * BlockMethod} on LLaMA blocks: learnable equivalent smoothing (LET), learnable weight clipping
 * (LWC), the compensation vectors on ffn_down, fake quantization with ABQ-LLM's quantizers
 * (per-output-channel weights, per-token dynamic activations at the four linear inputs, attention
 * in full precision) and the distribution-correction loss, each switchable in {@link AbqConfig}.
 * The parameters are described in {@link AbqParameters}; after calibration {@link AbqFold} folds
 * everything foldable into the real weights and norms, and the clip factors into the integer
 * weight codes that {@link AbqLinear} runs.
 *
 * <p>Per linear layer the weight the block multiplies by is, in the authors' order, {@code
 * quant_clip(smooth(W) + a·bᵀ)}: smoothing first, then compensation (ffn_down only), then
 * fake quantization with the clip factors.
 *
 * <p>It lives in {@code lowbit.abq} rather than {@code lowbit.calibrate} because the quantizers it
 * calibrates and the integer codes the result becomes ({@link ClippedWeightQuantizer}, {@link
 * IntCodes}) are this package's; the engine stays method-agnostic.
 */
public final class AbqMethod implements BlockMethod {
    private final AbqConfig config;
    private final int blockCount;

    /** {@code blockCount}: the model's number of blocks (the compensation goes to the first 3 and last 4). */
    public AbqMethod(AbqConfig config, int blockCount) {
        if (config == null) throw new IllegalArgumentException("an ABQ config is required");
        if (blockCount < 1) throw new IllegalArgumentException("block count " + blockCount + " must be >= 1");
        this.config = config;
        this.blockCount = blockCount;
    }

    public AbqConfig config() {
        return config;
    }

    @Override
    public String id() {
        return config + " blocks=" + blockCount;
    }

    @Override
    public BlockSetup prepare(int index, DecoderBlock block, SiteStats stats, long seed) {
        LlamaBlock lb = llama(block);
        AbqParameters p = AbqParameters.init(index, blockCount, lb, stats, config);
        return config.loss().setup(block, hooks(lb, p, config, true), p.groups());
    }

    static LlamaBlock llama(DecoderBlock block) {
        if (!(block instanceof LlamaBlock)) {
            throw new IllegalArgumentException("ABQ calibration is implemented for LLaMA blocks (OPT would need the authors' LET shifts), got "
                    + block.getClass().getSimpleName());
        }
        return (LlamaBlock) block;
    }

    /**
     * The block's hooks with parameters {@code p}; {@code quantize} false leaves out every fake
     * quantizer (the smoothed, compensated FP block that {@link AbqFold} must reproduce).
     */
    static BlockHooks hooks(LlamaBlock block, AbqParameters p, AbqConfig config, boolean quantize) {
        Var expand = p.out == null ? null : Var.constant(kvExpansion(block), block.weight("attn_v").rows(), block.weight("attn_output").cols());
        return tape -> new BlockHooks.Pass() {
            @Override
            public Var activation(Site site, Var x) {
                switch (site) {
                    case ATTN_IN:
                        return quantizeActivation(tape, p.qkv == null ? x : p.qkv.activations(tape, x));
                    case FFN_IN:
                        return quantizeActivation(tape, p.fc1 == null ? x : p.fc1.activations(tape, x));
                    case ATTN_OUT_IN: // already divided by let.out through attn_v's rows
                    case FFN_DOWN_IN: // already divided by let.fc2 through ffn_up's rows
                        return quantizeActivation(tape, x);
                    default:
                        return x; // queries, keys, values: attention runs in full precision
                }
            }

            @Override
            public Var weight(String linear, Var w) {
                switch (linear) {
                    case "attn_q":
                    case "attn_k":
                        if (p.qkv != null) w = p.qkv.weight(tape, w);
                        break;
                    case "attn_v":
                        if (p.qkv != null) w = p.qkv.weight(tape, w);
                        if (p.out != null) w = divideRows(tape, w, p.out.param().var());
                        break;
                    case "attn_output":
                        if (p.out != null) w = MatrixOps.scaleColumns(tape, w, MatrixOps.matmul(tape, p.out.param().var(), expand), false);
                        break;
                    case "ffn_gate":
                        if (p.fc1 != null) w = p.fc1.weight(tape, w);
                        break;
                    case "ffn_up":
                        if (p.fc1 != null) w = p.fc1.weight(tape, w);
                        if (p.fc2 != null) w = divideRows(tape, w, p.fc2.param().var());
                        break;
                    case "ffn_down":
                        if (p.fc2 != null) w = p.fc2.weight(tape, w);
                        if (p.compensation != null) w = p.compensation.apply(tape, w);
                        break;
                    default:
                        throw new IllegalArgumentException("not a LLaMA block linear layer: " + linear);
                }
                return quantize ? FakeQuant.apply(tape, w, config.weightSpec(), p.clips.get(linear)) : w;
            }

            private Var quantizeActivation(Tape t, Var x) {
                return quantize ? FakeQuant.apply(t, x, config.activationSpec(), null) : x;
            }
        };
    }

    /** {@code W ⊘ s} per row ({@code s}: {@code 1 × rows}), as transpose, column division, transpose. */
    private static Var divideRows(Tape tape, Var w, Var s) {
        return MatrixOps.transpose(tape, MatrixOps.scaleColumns(tape, MatrixOps.transpose(tape, w), s, true));
    }

    /**
     * The 0/1 matrix ({@code kvDim × dim}) that repeats a KV channel value for every query head of
     * its group: {@code E[(h/group)·hd + d][h·hd + d] = 1}, as grouped-query attention reads them.
     */
    static double[] kvExpansion(LlamaBlock block) {
        int heads = block.config().headCount(), kvHeads = block.config().kvHeadCount(), hd = block.config().headDim();
        int group = heads / kvHeads, dim = heads * hd;
        double[] e = new double[kvHeads * hd * dim];
        for (int h = 0; h < heads; h++) {
            for (int d = 0; d < hd; d++) e[((h / group) * hd + d) * dim + h * hd + d] = 1;
        }
        return e;
    }
}
