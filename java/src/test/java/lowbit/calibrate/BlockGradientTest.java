package lowbit.calibrate;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.Granularity;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/**
 * Whole blocks of both families against central finite differences (FP64, bound {@link
 * GradCheck#TOL}): full precision (gradient to the input), and quantized with every parameter kind
 * in place (gradients to the input and to all learnable parameters; rounding frozen, see {@link
 * GradCheck.FrozenRounding}). Small odd shapes: 2 sequences of 5 tokens, GQA 4 heads over 2 KV heads.
 */
class BlockGradientTest {
    private final Random rnd = new Random(17);

    private LlamaBlock llama() {
        // dim 12 = 4 heads × 3? RoPE needs an even head size: 2 heads × 6, 1 KV head; partial RoPE (4 of 6)
        LlamaConfig c = new LlamaConfig(1, 12, 10, 2, 1, 6, 4, 10000, 1, 1e-5f, 64, 100);
        Map<String, double[]> w = new LinkedHashMap<>();
        int[][] shapes = {{12, 12}, {6, 12}, {6, 12}, {12, 12}, {10, 12}, {10, 12}, {12, 10}};
        String[] names = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        for (int i = 0; i < names.length; i++) w.put(names[i], GradCheck.input(rnd, shapes[i][0], shapes[i][1], 0.4).value);
        return new LlamaBlock(c, RotaryEmbedding.of(c, null), positive(12), positive(12), w, Map.of("attn_q", GradCheck.input(rnd, 1, 12, 0.1).value));
    }

    private OptBlock opt() {
        Map<String, double[]> t = new HashMap<>();
        int dim = 12, ffn = 14;
        t.put("attn_norm.weight", positive(dim));
        t.put("attn_norm.bias", GradCheck.input(rnd, 1, dim, 0.1).value);
        t.put("ffn_norm.weight", positive(dim));
        t.put("ffn_norm.bias", GradCheck.input(rnd, 1, dim, 0.1).value);
        for (String l : OptBlock.LINEARS) {
            int out = l.equals("ffn_up") ? ffn : dim, in = l.equals("ffn_down") ? ffn : dim;
            t.put(l + ".weight", GradCheck.input(rnd, out, in, 0.4).value);
            t.put(l + ".bias", GradCheck.input(rnd, 1, out, 0.1).value);
        }
        return new OptBlock(dim, ffn, 4, 1e-5, t);
    }

    private double[] positive(int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = 0.6 + 0.8 * rnd.nextDouble();
        return v;
    }

    @Test
    void llamaBlockFullPrecision() {
        LlamaBlock b = llama();
        Var x = GradCheck.input(rnd, 10, 12, 1);
        GradCheck.check("llama block", List.of(x), t -> b.forward(t, x, 5, BlockHooks.NONE).output(), 41);
    }

    @Test
    void optBlockFullPrecision() {
        OptBlock b = opt();
        Var x = GradCheck.input(rnd, 10, 12, 1);
        GradCheck.check("opt block", List.of(x), t -> b.forward(t, x, 5, BlockHooks.NONE).output(), 42);
    }

    @Test
    void llamaBlockQuantizedWithAllParameterKinds() {
        LlamaBlock b = llama();
        check("quantized llama block", b, 43);
    }

    @Test
    void optBlockQuantizedWithAllParameterKinds() {
        OptBlock b = opt();
        check("quantized opt block", b, 44);
    }

    private void check(String what, DecoderBlock b, long seed) {
        Var x = GradCheck.input(rnd, 10, 12, 1);
        AllKindsHooks hooks = new AllKindsHooks(b, 10, rnd);
        List<Var> vars = new ArrayList<>(List.of(x));
        for (Param p : hooks.params) vars.add(p.var());
        GradCheck.check(what, vars, t -> b.forward(t, x, 5, hooks).output(), seed);
    }

    /**
     * Every parameter kind in a block: a channel scale and a Kronecker transform (3 ⊗ 4) on the
     * attention input, per-token activation quantization with a shared learnable clip at every
     * linear input, asymmetric grouped quantization of the keys, per-channel weight quantization
     * with per-channel learnable clipping (LWC), low-rank compensation on ffn_down.
     */
    private static final class AllKindsHooks implements BlockHooks {
        final List<Param> params = new ArrayList<>();
        private final ChannelScale scale;
        private final KroneckerTransform transform;
        private final Map<String, ClipFactors> clips = new LinkedHashMap<>();
        private final Map<String, GradCheck.FrozenRounding> rounding = new HashMap<>();
        private final LowRankCompensation lowRank;
        private final int tokens;

        AllKindsHooks(DecoderBlock b, int tokens, Random rnd) {
            this.tokens = tokens;
            int dim = b.dim();
            double[] s = new double[dim];
            for (int i = 0; i < dim; i++) s[i] = 0.7 + 0.6 * rnd.nextDouble();
            scale = new ChannelScale("s", s);
            transform = new KroneckerTransform("t", dim, 5);
            for (Param p : transform.params()) {
                double[] v = p.values();
                for (int i = 0; i < v.length; i++) v[i] += 0.1 * rnd.nextGaussian();
                p.set(v);
            }
            params.add(scale.param());
            params.addAll(transform.params());
            for (Site site : List.of(Site.ATTN_IN, Site.KEY, Site.ATTN_OUT_IN, Site.FFN_IN, Site.FFN_DOWN_IN)) clips.put(site.name(), new ClipFactors(site.name(), 1, 1.5 + rnd.nextGaussian() * 0.2));
            for (String l : b.linears()) clips.put(l, new ClipFactors(l, b.weight(l).rows, 1.5 + rnd.nextGaussian() * 0.2));
            for (ClipFactors c : clips.values()) params.add(c.param());
            Var down = b.weight("ffn_down");
            lowRank = new LowRankCompensation("lr", down.rows, down.cols);
            lowRank.left().set(GradCheck.input(rnd, down.rows, 1, 0.05).value);
            params.add(lowRank.left());
            params.add(lowRank.right());
        }

        private GradCheck.FrozenRounding rounding(String key, int elements, QuantSpec spec) {
            return rounding.computeIfAbsent(key, k -> new GradCheck.FrozenRounding(elements, spec));
        }

        @Override
        public Pass open(Tape tape) {
            KroneckerTransform.Bound bound = transform.bind(tape);
            return new Pass() {
                @Override
                public Var activation(Site site, Var x) {
                    if (site == Site.QUERY || site == Site.VALUE) return x;
                    if (site == Site.ATTN_IN) x = bound.activations(scale.activations(tape, x));
                    QuantSpec spec = site == Site.KEY ? QuantSpec.grouped(4, false, 3) : QuantSpec.asymmetric(6, Granularity.PER_ROW);
                    return FakeQuant.apply(tape, x, spec, clips.get(site.name()), rounding(site.name(), x.value.length, spec));
                }

                @Override
                public Var weight(String linear, Var w) {
                    if (Site.inputOf(linear) == Site.ATTN_IN) w = bound.weight(scale.weight(tape, w));
                    if (linear.equals("ffn_down")) w = lowRank.apply(tape, w);
                    QuantSpec spec = QuantSpec.asymmetric(4, Granularity.PER_ROW);
                    return FakeQuant.apply(tape, w, spec, clips.get(linear), rounding(linear, w.value.length, spec));
                }
            };
        }
    }
}
