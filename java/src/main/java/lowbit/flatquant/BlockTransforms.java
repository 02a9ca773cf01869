package lowbit.flatquant;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.calibrate.AffineFactor;
import lowbit.calibrate.ChannelScale;
import lowbit.calibrate.ClipFactors;
import lowbit.calibrate.KroneckerTransform;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Param;
import lowbit.calibrate.ParamGroup;
import lowbit.calibrate.Site;
import lowbit.calibrate.SiteStats;
import lowbit.calibrate.Var;
import lowbit.model.LlamaConfig;

/**
 * FlatQuant's learnable parameters of one LLaMA block, placed as the authors place them
 * ({@code model_tools/llama_utils.py}):
 *
 * <ul>
 *   <li>{@code qkv}: per-channel scale and Kronecker transform {@code P1 ⊗ P2} of the hidden input of
 *       attn_q/k/v ({@code ln_trans}); 576 → (24, 24) on SmolLM2;
 *   <li>{@code up}: the same for the hidden input of ffn_gate/ffn_up ({@code up_gate_trans});
 *   <li>{@code down}: the same for the intermediate input of ffn_down ({@code down_trans}); 1536 →
 *       (32, 48);
 *   <li>{@code v}: a head-size transform {@code Pv} of the values ({@code vcache_trans}), applied to
 *       attn_v's output rows, so the V cache holds {@code v·(I ⊗ Pv)};
 *   <li>{@code o}: a heads × heads transform {@code Po} ({@code o_trans}): attn_output reads {@code
 *       o·(Po ⊗ Pv)} (Pv arrives through the values, Po is applied online on the head axis) and
 *       multiplies by {@code W_o·(Po ⊗ Pv)⁻ᵀ};
 *   <li>{@code k}: a head-size transform {@code Pk} ({@code kcache_trans}) applied online after RoPE:
 *       keys {@code k·(I ⊗ Pk)}, queries {@code q·(I ⊗ Pk⁻ᵀ)}, so {@code q·kᵀ} is unchanged;
 *   <li>learnable clipping: per output channel of every weight, one pair per activation quantizer
 *       (the four linear inputs, and K and V when the KV cache is quantized).
 * </ul>
 *
 * Every factor is an {@link AffineFactor} ({@code U·diag(σ)·Vᵀ}, random orthogonal start, σ = 1), so
 * inverse-transposes need no matrix inverse. Scales start SmoothQuant-style ({@link
 * ChannelScale#smoothQuant}, α = {@value #DEFAULT_ALPHA} as the authors' {@code --diag_alpha}) from the
 * FP pass's channel maxima; activations are divided by the scale, weight columns multiplied.
 */
public final class BlockTransforms {
    public static final double DEFAULT_ALPHA = 0.3;
    static final List<Site> LINEAR_INPUTS = List.of(Site.ATTN_IN, Site.ATTN_OUT_IN, Site.FFN_IN, Site.FFN_DOWN_IN);

    final LlamaConfig config;
    final ChannelScale qkvScale;
    final ChannelScale upScale;
    final ChannelScale downScale;
    final KroneckerTransform qkv;
    final KroneckerTransform up;
    final KroneckerTransform down;
    final AffineFactor o;
    final AffineFactor v;
    final AffineFactor k;
    private final AffineFactor[] kronFactors;
    private final Map<String, ClipFactors> weightClips = new LinkedHashMap<>();
    private final Map<Site, ClipFactors> activationClips = new EnumMap<>(Site.class);

    /**
     * The parameters for {@code block} under {@code scheme}, names prefixed with {@code prefix}.
     * {@code stats}: the FP pass's channel maxima for the SmoothQuant-style scale init, or null for
     * unit scales. {@code seed} seeds the random orthogonal starts.
     */
    public BlockTransforms(String prefix, LlamaBlock block, SiteStats stats, QuantScheme scheme, double alpha, long seed) {
        if (block == null || scheme == null) throw new IllegalArgumentException("a block and a quantization scheme are required");
        this.config = block.config();
        int d = config.dim(), f = config.ffnDim(), hd = config.headDim();
        int[] dd = decompose(d, "hidden size"), fd = decompose(f, "intermediate size");
        if (scheme.kv() != null) scheme.kv().groupLength(1, config.kvDim());
        kronFactors = new AffineFactor[] {
            new AffineFactor(prefix + "qkv.p1", dd[0], true, seed + 1), new AffineFactor(prefix + "qkv.p2", dd[1], true, seed + 2),
            new AffineFactor(prefix + "up.p1", dd[0], true, seed + 3), new AffineFactor(prefix + "up.p2", dd[1], true, seed + 4),
            new AffineFactor(prefix + "down.p1", fd[0], true, seed + 5), new AffineFactor(prefix + "down.p2", fd[1], true, seed + 6)};
        qkv = new KroneckerTransform(kronFactors[0], kronFactors[1]);
        up = new KroneckerTransform(kronFactors[2], kronFactors[3]);
        down = new KroneckerTransform(kronFactors[4], kronFactors[5]);
        o = new AffineFactor(prefix + "o", config.headCount(), true, seed + 7);
        v = new AffineFactor(prefix + "v", hd, true, seed + 8);
        k = new AffineFactor(prefix + "k", hd, true, seed + 9);
        qkvScale = new ChannelScale(prefix + "qkv.scale", initScale(stats, Site.ATTN_IN, block, List.of("attn_q", "attn_k", "attn_v"), d, alpha));
        upScale = new ChannelScale(prefix + "up.scale", initScale(stats, Site.FFN_IN, block, List.of("ffn_gate", "ffn_up"), d, alpha));
        downScale = new ChannelScale(prefix + "down.scale", initScale(stats, Site.FFN_DOWN_IN, block, List.of("ffn_down"), f, alpha));
        for (String l : block.linears()) {
            Var w = block.weight(l);
            weightClips.put(l, new ClipFactors(prefix + l + ".wclip", scheme.weights().groupCount(w.rows(), w.cols()), ClipFactors.DEFAULT_INIT));
        }
        List<Site> sites = new ArrayList<>(LINEAR_INPUTS);
        if (scheme.kv() != null) sites.addAll(List.of(Site.KEY, Site.VALUE));
        for (Site s : sites) activationClips.put(s, new ClipFactors(prefix + s.name().toLowerCase() + ".aclip", 1, ClipFactors.DEFAULT_INIT));
    }

    /**
     * {@link KroneckerTransform#decompose}, refusing the sizes for which FlatQuant's rule has no
     * solution: {@code a² − n = b²} means {@code n = (a − b)(a + b)}, two factors of equal parity, so
     * {@code n ≡ 2 (mod 4)} never decomposes (the rule would search forever).
     */
    public static int[] decompose(int n, String what) {
        if (n < 1 || n % 4 == 2) throw new IllegalArgumentException(what + " " + n + " has no FlatQuant Kronecker decomposition (n must be >= 1 and not 2 mod 4)");
        return KroneckerTransform.decompose(n);
    }

    private static double[] initScale(SiteStats stats, Site site, LlamaBlock block, List<String> readers, int n, double alpha) {
        if (stats == null) {
            double[] ones = new double[n];
            java.util.Arrays.fill(ones, 1.0);
            return ones;
        }
        double[] wmax = new double[n];
        for (String l : readers) {
            Var w = block.weight(l);
            double[] a = w.value();
            for (int r = 0; r < w.rows(); r++) {
                for (int c = 0; c < n; c++) wmax[c] = Math.max(wmax[c], Math.abs(a[r * n + c]));
            }
        }
        return ChannelScale.smoothQuant(stats.absMax(site), wmax, alpha);
    }

    /** Factor sizes of the three Kronecker transforms: {qkv (n1, n2), up (n1, n2), down (n1, n2)}. */
    public int[][] kroneckerSizes() {
        return new int[][] {{kronFactors[0].size(), kronFactors[1].size()}, {kronFactors[2].size(), kronFactors[3].size()},
            {kronFactors[4].size(), kronFactors[5].size()}};
    }

    /** Sizes of the per-head factors: {o (heads), v (head size), k (head size)}. */
    public int[] headFactorSizes() {
        return new int[] {o.size(), v.size(), k.size()};
    }

    /**
     * Overwrites every parameter with the value of the same name in {@code values} (a calibration
     * result or checkpoint). The random orthogonal bases are not parameters: they come from the seed
     * this object was made with, which must be the one the calibration used.
     */
    public void load(java.util.Map<String, double[]> values) {
        for (Param p : params()) {
            double[] v = values.get(p.name());
            if (v == null) throw new IllegalArgumentException("the calibration result has no parameter " + p.name());
            p.set(v);
        }
    }

    /** The Kronecker factors {P1, P2} of the transform before {@code site} (ATTN_IN, FFN_IN or FFN_DOWN_IN). */
    AffineFactor[] kroneckerFactors(Site site) {
        switch (site) {
            case ATTN_IN:
                return new AffineFactor[] {kronFactors[0], kronFactors[1]};
            case FFN_IN:
                return new AffineFactor[] {kronFactors[2], kronFactors[3]};
            case FFN_DOWN_IN:
                return new AffineFactor[] {kronFactors[4], kronFactors[5]};
            default:
                throw new IllegalArgumentException("no Kronecker transform before " + site);
        }
    }

    ClipFactors weightClip(String linear) {
        return weightClips.get(linear);
    }

    ClipFactors activationClip(Site site) {
        return activationClips.get(site);
    }

    /** Transform factors and channel scales (the authors' lr 5e-3 group). */
    public List<Param> transformParams() {
        List<Param> p = new ArrayList<>();
        for (AffineFactor a : kronFactors) p.addAll(a.params());
        for (AffineFactor a : List.of(o, v, k)) p.addAll(a.params());
        p.add(qkvScale.param());
        p.add(upScale.param());
        p.add(downScale.param());
        return p;
    }

    /** Weight and activation clipping logits (the authors' 10x learning rate group). */
    public List<Param> clipParams() {
        List<Param> p = new ArrayList<>();
        for (ClipFactors c : weightClips.values()) p.add(c.param());
        for (ClipFactors c : activationClips.values()) p.add(c.param());
        return p;
    }

    /** All parameters: transforms then clips. */
    public List<Param> params() {
        List<Param> p = new ArrayList<>(transformParams());
        p.addAll(clipParams());
        return Collections.unmodifiableList(p);
    }

    /** The two AdamW groups with the given rates and no weight decay. */
    public List<ParamGroup> groups(double transformLr, double clipLr) {
        return List.of(new ParamGroup("flatquant.transforms", transformLr, 0, transformParams()), new ParamGroup("flatquant.clips", clipLr, 0, clipParams()));
    }
}
