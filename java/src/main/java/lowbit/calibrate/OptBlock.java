package lowbit.calibrate;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An OPT-family decoder block (pre-LayerNorm, multi-head attention without RoPE — learned positions
 * are added to the embeddings outside the blocks — and a ReLU MLP, biases everywhere):
 *
 * <pre>
 *   x1  = x + attn_output(attention(attn_q(n), attn_k(n), attn_v(n))),  n = layernorm(x)
 *   out = x1 + ffn_down(relu(ffn_up(m))),                               m = layernorm(x1)
 * </pre>
 *
 * ({@code ffn_up} is OPT's fc1, {@code ffn_down} its fc2; OPT's query scaling by 1/√d is the
 * attention's).
 */
public final class OptBlock implements DecoderBlock {
    /** Linear layers of an OPT block in the order they run. */
    public static final List<String> LINEARS = List.of("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down");
    private final int dim;
    private final int heads;
    private final double eps;
    private final Map<String, Var> tensors = new LinkedHashMap<>();

    /**
     * {@code tensors} by name: {@code attn_norm.weight/.bias}, {@code ffn_norm.weight/.bias} ({@code
     * dim}), and {@code <linear>.weight} ({@code [out][in]}) and {@code <linear>.bias} for each of
     * {@link #LINEARS}; {@code eps} is the LayerNorm epsilon (1e-5 in OPT).
     */
    public OptBlock(int dim, int ffnDim, int heads, double eps, Map<String, double[]> tensors) {
        if (dim < 1 || ffnDim < 1 || heads < 1 || dim % heads != 0) throw new IllegalArgumentException("bad OPT shape dim=" + dim + " ffn=" + ffnDim + " heads=" + heads);
        this.dim = dim;
        this.heads = heads;
        this.eps = eps;
        put(tensors, "attn_norm.weight", 1, dim);
        put(tensors, "attn_norm.bias", 1, dim);
        put(tensors, "ffn_norm.weight", 1, dim);
        put(tensors, "ffn_norm.bias", 1, dim);
        for (String l : LINEARS) {
            int out = l.equals("ffn_up") ? ffnDim : dim, in = l.equals("ffn_down") ? ffnDim : dim;
            put(tensors, l + ".weight", out, in);
            put(tensors, l + ".bias", 1, out);
        }
        for (String n : tensors.keySet()) if (!this.tensors.containsKey(n)) throw new IllegalArgumentException("unknown OPT tensor " + n);
    }

    private void put(Map<String, double[]> src, String name, int rows, int cols) {
        double[] v = src.get(name);
        if (v == null || v.length != rows * cols) {
            throw new IllegalArgumentException(name + ": expected " + rows + "×" + cols + " values, got " + (v == null ? "none" : v.length));
        }
        tensors.put(name, Var.constant(v, rows, cols));
    }

    @Override
    public int dim() {
        return dim;
    }

    @Override
    public List<String> linears() {
        return LINEARS;
    }

    @Override
    public Var weight(String linear) {
        if (!LINEARS.contains(linear)) throw new IllegalArgumentException("no linear layer " + linear + " in an OPT block " + LINEARS);
        return tensors.get(linear + ".weight");
    }

    @Override
    public BlockPass forward(Tape tape, Var x, int seqLen, BlockHooks hooks) {
        if (x.cols != dim) throw new IllegalArgumentException("block input has " + x.cols + " columns, the block " + dim);
        BlockHooks.Pass h = hooks.open(tape);
        if (h instanceof InputAwarePass) ((InputAwarePass) h).input(x, seqLen);
        int hd = dim / heads;
        Var n = h.activation(Site.ATTN_IN, LayerNorm.apply(tape, x, tensors.get("attn_norm.weight"), tensors.get("attn_norm.bias"), eps));
        Var q = h.activation(Site.QUERY, linear(tape, h, "attn_q", n));
        Var k = h.activation(Site.KEY, linear(tape, h, "attn_k", n));
        Var v = h.activation(Site.VALUE, linear(tape, h, "attn_v", n));
        Var p = CausalAttention.probabilities(tape, q, k, heads, heads, hd, seqLen);
        Var o = h.activation(Site.ATTN_OUT_IN, CausalAttention.apply(tape, p, v, heads, heads, hd, seqLen));
        Var x1 = Pointwise.add(tape, x, linear(tape, h, "attn_output", o));
        Var m = h.activation(Site.FFN_IN, LayerNorm.apply(tape, x1, tensors.get("ffn_norm.weight"), tensors.get("ffn_norm.bias"), eps));
        Var r = h.activation(Site.FFN_DOWN_IN, Pointwise.relu(tape, linear(tape, h, "ffn_up", m)));
        return new BlockPass(Pointwise.add(tape, x1, linear(tape, h, "ffn_down", r)), p);
    }

    private Var linear(Tape tape, BlockHooks.Pass h, String name, Var x) {
        return Linear.apply(tape, x, h.weight(name, tensors.get(name + ".weight")), tensors.get(name + ".bias"));
    }
}
