package lowbit.calibrate;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.io.GgufFile;
import lowbit.model.FloatLinear;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
import lowbit.model.LlamaModel;

/**
 * A LLaMA-family decoder block as {@link LlamaModel} runs it, differentiable:
 *
 * <pre>
 *   x1  = x + attn_output(attention(rope(attn_q(n)), rope(attn_k(n)), attn_v(n))),  n = rmsnorm(x)
 *   out = x1 + ffn_down(silu(ffn_gate(m)) ⊙ ffn_up(m)),                              m = rmsnorm(x1)
 * </pre>
 *
 * with causal grouped-query attention and RoPE in the model's convention. Weights are frozen
 * constants (FP32 values held as double); optional biases (none in SmolLM2) are kept.
 */
public final class LlamaBlock implements DecoderBlock {
    private final LlamaConfig config;
    private final RotaryEmbedding rope;
    private final Var attnNorm;
    private final Var ffnNorm;
    private final Map<String, Var> weights = new LinkedHashMap<>();
    private final Map<String, Var> biases = new LinkedHashMap<>();

    /** {@code weights}: the seven linear layers by name ({@code [out][in]}); {@code biases} may be empty. */
    public LlamaBlock(LlamaConfig config, RotaryEmbedding rope, double[] attnNorm, double[] ffnNorm,
                      Map<String, double[]> weights, Map<String, double[]> biases) {
        this.config = config;
        this.rope = rope;
        int d = config.dim(), kv = config.kvDim(), f = config.ffnDim();
        this.attnNorm = Var.constant(checked(attnNorm, d, "attn_norm"), 1, d);
        this.ffnNorm = Var.constant(checked(ffnNorm, d, "ffn_norm"), 1, d);
        int[][] shapes = {{d, d}, {kv, d}, {kv, d}, {d, d}, {f, d}, {f, d}, {d, f}};
        for (int i = 0; i < shapes.length; i++) {
            String name = LlamaModel.BLOCK_LINEARS.get(i);
            double[] w = weights.get(name);
            if (w == null) throw new IllegalArgumentException("missing weight " + name);
            this.weights.put(name, Var.constant(checked(w, shapes[i][0] * shapes[i][1], name), shapes[i][0], shapes[i][1]));
            double[] b = biases.get(name);
            if (b != null) this.biases.put(name, Var.constant(checked(b, shapes[i][0], name + " bias"), 1, shapes[i][0]));
        }
        for (String n : weights.keySet()) if (!LlamaModel.BLOCK_LINEARS.contains(n)) throw new IllegalArgumentException("unknown linear layer " + n);
    }

    /** Block {@code block} of {@code model}, whose block linear layers must still be {@link FloatLinear}. */
    public static LlamaBlock fromModel(LlamaModel model, int block, RotaryEmbedding rope) {
        LlamaConfig c = model.config();
        if (block < 0 || block >= c.blockCount()) throw new IllegalArgumentException("block " + block + " not in 0.." + (c.blockCount() - 1));
        Map<String, double[]> w = new LinkedHashMap<>(), b = new LinkedHashMap<>();
        for (String name : LlamaModel.BLOCK_LINEARS) {
            LinearOp op = model.linear("blk." + block + "." + name);
            if (!(op instanceof FloatLinear)) {
                throw new IllegalArgumentException("blk." + block + "." + name + " is " + op.getClass().getSimpleName() + ", not an FP32 FloatLinear");
            }
            FloatLinear fl = (FloatLinear) op;
            w.put(name, toDouble(fl.weight()));
            if (fl.bias() != null) b.put(name, toDouble(fl.bias()));
        }
        return new LlamaBlock(c, rope, toDouble(model.normWeight("blk." + block + ".attn_norm")),
                toDouble(model.normWeight("blk." + block + ".ffn_norm")), w, b);
    }

    /**
     * Block {@code block} read straight from a {@code llama} GGUF (only this block's tensors are
     * dequantized, so calibration holds one block's weights at a time).
     */
    public static LlamaBlock fromGguf(GgufFile g, LlamaConfig c, int block, RotaryEmbedding rope) throws IOException {
        if (block < 0 || block >= c.blockCount()) throw new IllegalArgumentException("block " + block + " not in 0.." + (c.blockCount() - 1));
        String p = "blk." + block + ".";
        int d = c.dim(), kv = c.kvDim(), f = c.ffnDim();
        long[][] dims = {{d, d}, {d, kv}, {d, kv}, {d, d}, {d, f}, {d, f}, {f, d}}; // GGML order: in, out
        Map<String, double[]> w = new LinkedHashMap<>(), b = new LinkedHashMap<>();
        for (int i = 0; i < dims.length; i++) {
            String name = LlamaModel.BLOCK_LINEARS.get(i);
            w.put(name, toDouble(read(g, p + name + ".weight", dims[i])));
            if (g.hasTensor(p + name + ".bias")) b.put(name, toDouble(read(g, p + name + ".bias", new long[] {dims[i][1]})));
        }
        return new LlamaBlock(c, rope, toDouble(read(g, p + "attn_norm.weight", new long[] {d})),
                toDouble(read(g, p + "ffn_norm.weight", new long[] {d})), w, b);
    }

    private static float[] read(GgufFile g, String name, long[] dims) throws IOException {
        if (!java.util.Arrays.equals(g.tensor(name).dims(), dims)) {
            throw new IOException(name + " has dims " + java.util.Arrays.toString(g.tensor(name).dims()) + ", expected " + java.util.Arrays.toString(dims));
        }
        return g.readFloats(name);
    }

    public LlamaConfig config() {
        return config;
    }

    /** The RoPE this block applies. */
    public RotaryEmbedding rope() {
        return rope;
    }

    /** The RMSNorm weight before attention ({@code 1 × dim}, a constant; do not modify its values). */
    public Var attnNorm() {
        return attnNorm;
    }

    /** The RMSNorm weight before the feed-forward network ({@code 1 × dim}, a constant; do not modify its values). */
    public Var ffnNorm() {
        return ffnNorm;
    }

    /** The bias ({@code 1 × out}) of a linear layer, or null when it has none. */
    public Var bias(String linear) {
        weight(linear);
        return biases.get(linear);
    }

    @Override
    public int dim() {
        return config.dim();
    }

    @Override
    public List<String> linears() {
        return LlamaModel.BLOCK_LINEARS;
    }

    @Override
    public Var weight(String linear) {
        Var w = weights.get(linear);
        if (w == null) throw new IllegalArgumentException("no linear layer " + linear + " in a LLaMA block " + linears());
        return w;
    }

    @Override
    public BlockPass forward(Tape tape, Var x, int seqLen, BlockHooks hooks) {
        if (x.cols != config.dim()) throw new IllegalArgumentException("block input has " + x.cols + " columns, the model " + config.dim());
        BlockHooks.Pass h = hooks.open(tape);
        if (h instanceof InputAwarePass) ((InputAwarePass) h).input(x, seqLen);
        int heads = config.headCount(), kvHeads = config.kvHeadCount(), hd = config.headDim();
        Var n = h.activation(Site.ATTN_IN, RmsNorm.apply(tape, x, attnNorm, config.rmsEps()));
        Var q = h.activation(Site.QUERY, rope.apply(tape, linear(tape, h, "attn_q", n), seqLen));
        Var k = h.activation(Site.KEY, rope.apply(tape, linear(tape, h, "attn_k", n), seqLen));
        Var v = h.activation(Site.VALUE, linear(tape, h, "attn_v", n));
        Var p = CausalAttention.probabilities(tape, q, k, heads, kvHeads, hd, seqLen);
        Var o = h.activation(Site.ATTN_OUT_IN, CausalAttention.apply(tape, p, v, heads, kvHeads, hd, seqLen));
        Var x1 = Pointwise.add(tape, x, linear(tape, h, "attn_output", o));
        Var m = h.activation(Site.FFN_IN, RmsNorm.apply(tape, x1, ffnNorm, config.rmsEps()));
        Var gated = h.activation(Site.FFN_DOWN_IN, Pointwise.swiGlu(tape, linear(tape, h, "ffn_gate", m), linear(tape, h, "ffn_up", m)));
        return new BlockPass(Pointwise.add(tape, x1, linear(tape, h, "ffn_down", gated)), p);
    }

    private Var linear(Tape tape, BlockHooks.Pass h, String name, Var x) {
        return Linear.apply(tape, x, h.weight(name, weights.get(name)), biases.get(name));
    }

    static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < d.length; i++) d[i] = f[i];
        return d;
    }

    private static double[] checked(double[] a, int length, String what) {
        if (a == null || a.length != length) throw new IllegalArgumentException(what + ": expected " + length + " values, got " + (a == null ? "none" : a.length));
        return a;
    }
}
