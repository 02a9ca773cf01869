package lowbit.abq;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.calibrate.ChannelScale;
import lowbit.calibrate.ClipFactors;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.LowRankCompensation;
import lowbit.calibrate.Param;
import lowbit.calibrate.ParamGroup;
import lowbit.calibrate.Site;
import lowbit.calibrate.SiteStats;

/**
 * The learnable parameters of ABQ-LLM on one LLaMA block, named {@code blk.N.…} as the checkpoint
 * stores them. Smoothing scales (LET, each {@code 1 × channels}; a linear input becomes {@code x ⊘
 * s}, the weight columns that read it {@code W ⊙ s}):
 *
 * <ul>
 *   <li>{@code let.qkv} ({@code dim}): the normalized attention input read by attn_q/k/v;
 *   <li>{@code let.out} ({@code kvDim}): attn_v's output rows are divided by it, so the attention
 *       output read by attn_output arrives divided by it repeated over each KV group's query heads;
 *   <li>{@code let.fc1} ({@code dim}): the normalized FFN input read by ffn_gate/up;
 *   <li>{@code let.fc2} ({@code ffnDim}): ffn_up's output rows are divided by it, so {@code silu(gate)
 *       ⊙ up} (read by ffn_down) arrives divided by it.
 * </ul>
 *
 * Clip logits {@code <linear>.clip} (one pair per output channel, {@link ClipFactors}) and, in the
 * first 3 and last 4 blocks, {@code ffn_down.comp.a}/{@code .b} ({@link LowRankCompensation}).
 * ABQ-LLM's Q/K smoothing scale is left out: weights are quantized per output channel, which is
 * invariant to scaling q/k rows, attention runs in full precision here, and under RoPE a per-channel
 * q/k rescaling is not an exact equivalence anyway.
 */
final class AbqParameters {
    final ChannelScale qkv;
    final ChannelScale out;
    final ChannelScale fc1;
    final ChannelScale fc2;
    final Map<String, ClipFactors> clips;
    final LowRankCompensation compensation;
    private final AbqConfig config;

    private AbqParameters(AbqConfig config, ChannelScale qkv, ChannelScale out, ChannelScale fc1, ChannelScale fc2,
                          Map<String, ClipFactors> clips, LowRankCompensation compensation) {
        this.config = config;
        this.qkv = qkv;
        this.out = out;
        this.fc1 = fc1;
        this.fc2 = fc2;
        this.clips = clips;
        this.compensation = compensation;
    }

    /** The first 3 and the last 4 blocks carry the compensation vectors (the authors' {@code i <= 2 or i >= L − 4}). */
    static boolean compensated(int index, int blockCount) {
        return index <= 2 || index >= blockCount - 4;
    }

    /**
     * Fresh parameters: smoothing from the FP pass's channel maxima ({@code stats}) and the weight
     * columns' maxima with {@code s = act^α / w^(1−α)}; clip logits 4; compensation {@code a = 0,
     * b = 1}. For let.out the maxima of a KV channel are taken over its group's query heads.
     */
    static AbqParameters init(int index, int blockCount, LlamaBlock block, SiteStats stats, AbqConfig config) {
        checkBlock(block, config);
        String p = "blk." + index + ".";
        ChannelScale qkv = null, out = null, fc1 = null, fc2 = null;
        if (config.let()) {
            if (stats == null) throw new IllegalArgumentException("LET's init needs the FP pass's channel statistics");
            double a = config.alpha();
            qkv = new ChannelScale(p + "let.qkv", ChannelScale.smoothQuant(stats.absMax(Site.ATTN_IN),
                    columnMax(block, "attn_q", "attn_k", "attn_v"), a));
            fc1 = new ChannelScale(p + "let.fc1", ChannelScale.smoothQuant(stats.absMax(Site.FFN_IN), columnMax(block, "ffn_gate", "ffn_up"), a));
            fc2 = new ChannelScale(p + "let.fc2", ChannelScale.smoothQuant(stats.absMax(Site.FFN_DOWN_IN), columnMax(block, "ffn_down"), a));
            out = new ChannelScale(p + "let.out", ChannelScale.smoothQuant(groupMax(block, stats.absMax(Site.ATTN_OUT_IN)),
                    groupMax(block, columnMax(block, "attn_output")), a));
        }
        Map<String, ClipFactors> clips = new LinkedHashMap<>();
        if (config.lwc()) {
            for (String l : block.linears()) {
                clips.put(l, new ClipFactors(p + l + ".clip", block.weight(l).rows(), ClipFactors.DEFAULT_INIT));
            }
        }
        LowRankCompensation comp = config.compensation() && compensated(index, blockCount)
                ? new LowRankCompensation(p + "ffn_down.comp", block.weight("ffn_down").rows(), block.weight("ffn_down").cols()) : null;
        return new AbqParameters(config, qkv, out, fc1, fc2, clips, comp);
    }

    /** Parameters with the values a calibration run saved ({@code saved}: name → values); a missing one is an error. */
    static AbqParameters restore(int index, int blockCount, LlamaBlock block, AbqConfig config, Map<String, double[]> saved) {
        checkBlock(block, config);
        String p = "blk." + index + ".";
        int dim = block.dim(), kv = block.weight("attn_v").rows(), ffn = block.weight("ffn_up").rows();
        ChannelScale qkv = null, out = null, fc1 = null, fc2 = null;
        if (config.let()) {
            qkv = restored(new ChannelScale(p + "let.qkv", ones(dim)), saved);
            out = restored(new ChannelScale(p + "let.out", ones(kv)), saved);
            fc1 = restored(new ChannelScale(p + "let.fc1", ones(dim)), saved);
            fc2 = restored(new ChannelScale(p + "let.fc2", ones(ffn)), saved);
        }
        Map<String, ClipFactors> clips = new LinkedHashMap<>();
        if (config.lwc()) {
            for (String l : block.linears()) {
                ClipFactors c = new ClipFactors(p + l + ".clip", block.weight(l).rows(), ClipFactors.DEFAULT_INIT);
                set(c.param(), saved);
                clips.put(l, c);
            }
        }
        LowRankCompensation comp = null;
        if (config.compensation() && compensated(index, blockCount)) {
            comp = new LowRankCompensation(p + "ffn_down.comp", block.weight("ffn_down").rows(), block.weight("ffn_down").cols());
            set(comp.left(), saved);
            set(comp.right(), saved);
        }
        return new AbqParameters(config, qkv, out, fc1, fc2, clips, comp);
    }

    /** The optimizer groups: LET, LWC and compensation at their learning rates, no weight decay (empty ones left out). */
    List<ParamGroup> groups() {
        List<ParamGroup> g = new ArrayList<>();
        List<Param> let = new ArrayList<>();
        for (ChannelScale s : new ChannelScale[] {qkv, out, fc1, fc2}) if (s != null) let.add(s.param());
        if (!let.isEmpty()) g.add(new ParamGroup("let", config.letLr(), 0, let));
        List<Param> lwc = new ArrayList<>();
        for (ClipFactors c : clips.values()) lwc.add(c.param());
        if (!lwc.isEmpty()) g.add(new ParamGroup("lwc", config.lwcLr(), 0, lwc));
        if (compensation != null) g.add(new ParamGroup("compensation", config.compensationLr(), 0, List.of(compensation.left(), compensation.right())));
        return g;
    }

    /** The LET scales need bias-free producers: a bias of attn_v or ffn_up would have to be divided too. */
    private static void checkBlock(LlamaBlock block, AbqConfig config) {
        if (config.let()) {
            for (String l : List.of("attn_v", "ffn_up")) {
                if (block.bias(l) != null) {
                    throw new IllegalArgumentException(l + " has a bias: ABQ's LET divides its output rows, which this calibration does for weights only");
                }
            }
        }
    }

    /** Per input column, the largest |w| over the given layers' weights. */
    private static double[] columnMax(LlamaBlock block, String... linears) {
        int k = block.weight(linears[0]).cols();
        double[] m = new double[k];
        for (String l : linears) {
            double[] w = block.weight(l).value();
            for (int i = 0; i < w.length; i++) m[i % k] = Math.max(m[i % k], Math.abs(w[i]));
        }
        return m;
    }

    /** Channel values over the query heads ({@code heads·headDim}) reduced by max to the KV channels ({@code kvHeads·headDim}). */
    private static double[] groupMax(LlamaBlock block, double[] perQueryChannel) {
        int heads = block.config().headCount(), kvHeads = block.config().kvHeadCount(), hd = block.config().headDim();
        int group = heads / kvHeads;
        double[] m = new double[kvHeads * hd];
        for (int h = 0; h < heads; h++) {
            for (int d = 0; d < hd; d++) m[(h / group) * hd + d] = Math.max(m[(h / group) * hd + d], perQueryChannel[h * hd + d]);
        }
        return m;
    }

    private static ChannelScale restored(ChannelScale s, Map<String, double[]> saved) {
        set(s.param(), saved);
        return s;
    }

    private static void set(Param p, Map<String, double[]> saved) {
        double[] v = saved.get(p.name());
        if (v == null) throw new IllegalArgumentException("the calibration result has no parameter " + p.name() + " (another method or config?)");
        for (double x : v) if (!Double.isFinite(x)) throw new IllegalArgumentException(p.name() + " holds a non-finite value " + x);
        p.set(v);
    }

    private static double[] ones(int n) {
        double[] v = new double[n];
        java.util.Arrays.fill(v, 1.0);
        return v;
    }
}
