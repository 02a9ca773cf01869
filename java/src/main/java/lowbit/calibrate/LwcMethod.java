package lowbit.calibrate;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.Granularity;

/**
 * Learnable weight clipping alone (OmniQuant's LWC, the base of ABQ-LLM's calibration) at a
 * W/A setting: each linear layer's weight fake-quantized with {@code weights} and per-group clip
 * factors (σ(4) init, learning rate {@code lr}, no weight decay), each linear input fake-quantized
 * with {@code activations} (dynamic, nothing learned), attention in full precision. With {@code
 * learn} false the same quantizers run without clipping: round-to-nearest, the baseline.
 */
public final class LwcMethod implements BlockMethod {
    private static final List<Site> INPUTS = List.of(Site.ATTN_IN, Site.ATTN_OUT_IN, Site.FFN_IN, Site.FFN_DOWN_IN);
    private final QuantSpec weights;
    private final QuantSpec activations;
    private final boolean learn;
    private final double lr;

    public LwcMethod(QuantSpec weights, QuantSpec activations, boolean learn, double lr) {
        if (learn && !(lr > 0)) throw new IllegalArgumentException("learning rate " + lr + " must be > 0");
        this.weights = weights;
        this.activations = activations;
        this.learn = learn;
        this.lr = lr;
    }

    /** W4A8 as in the evidence: INT4 per-channel asymmetric weights, INT8 per-token asymmetric activations, lr 1e-2. */
    public static LwcMethod w4a8(boolean learn) {
        return new LwcMethod(QuantSpec.asymmetric(4, Granularity.PER_ROW), QuantSpec.asymmetric(8, Granularity.PER_ROW), learn, 1e-2);
    }

    @Override
    public String id() {
        return (learn ? "lwc" : "rtn") + " w=" + weights + " a=" + activations + (learn ? " lr=" + lr : "");
    }

    @Override
    public BlockSetup prepare(int index, DecoderBlock block, SiteStats stats, long seed) {
        Map<String, ClipFactors> clips = new LinkedHashMap<>();
        List<Param> params = new ArrayList<>();
        if (learn) {
            for (String l : block.linears()) {
                Var w = block.weight(l);
                ClipFactors c = new ClipFactors("blk." + index + "." + l + ".clip", weights.groupCount(w.rows, w.cols), ClipFactors.DEFAULT_INIT);
                clips.put(l, c);
                params.add(c.param());
            }
        }
        BlockHooks hooks = tape -> new BlockHooks.Pass() {
            @Override
            public Var activation(Site site, Var x) {
                return INPUTS.contains(site) ? FakeQuant.apply(tape, x, activations, null) : x;
            }

            @Override
            public Var weight(String linear, Var w) {
                return FakeQuant.apply(tape, w, weights, clips.get(linear));
            }
        };
        List<ParamGroup> groups = learn ? List.of(new ParamGroup("lwc", lr, 0, params)) : List.of();
        return new BlockSetup(hooks, groups, BlockLoss.MSE);
    }
}
