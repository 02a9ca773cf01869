package lowbit.flatquant;

import java.util.LinkedHashMap;
import java.util.Map;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;

/**
 * FlatQuant's offline merge ({@code flat_utils.reparameterize_model}) in FP64: the channel scales of
 * the attention and FFN inputs go into the RMSNorm weights ({@code γ ⊘ s}), the down input's scale
 * into ffn_up's rows (and bias), since {@code silu(g) ⊙ (u ⊘ s) = (silu(g) ⊙ u) ⊘ s}; every {@code
 * P⁻ᵀ} into its weight, Pv into attn_v's output rows (and bias). What is left online is {@link
 * FlatQuantHooks} with {@code folded = true}: the three Kronecker transforms, Po on the head axis
 * and Pk on queries and keys after RoPE.
 */
public final class Folding {
    private Folding() {}

    /** The block with {@code t}'s offline parts merged into its norms, weights and biases. */
    public static LlamaBlock fold(LlamaBlock block, BlockTransforms t) {
        if (!block.config().equals(t.config)) throw new IllegalArgumentException("the transforms were made for another block shape");
        Tape tape = Tape.fp64();
        TransformPass p = new TransformPass(tape, t);
        double[] attnNorm = divide(block.attnNorm().value(), t.qkvScale.param().values());
        double[] ffnNorm = divide(block.ffnNorm().value(), t.upScale.param().values());
        double[] down = t.downScale.param().values();
        Map<String, double[]> weights = new LinkedHashMap<>(), biases = new LinkedHashMap<>();
        for (String l : block.linears()) {
            Var w = block.weight(l);
            if (l.equals("ffn_up")) w = Var.constant(divideRows(w.value(), w.rows(), w.cols(), down), w.rows(), w.cols());
            weights.put(l, p.weight(l, w).value().clone());
            Var b = block.bias(l);
            if (b == null) continue;
            if (l.equals("attn_v")) biases.put(l, p.valueBias(b).value().clone());
            else if (l.equals("ffn_up")) biases.put(l, divide(b.value(), down));
            else biases.put(l, b.value().clone());
        }
        return new LlamaBlock(block.config(), block.rope(), attnNorm, ffnNorm, weights, biases);
    }

    private static double[] divide(double[] a, double[] s) {
        double[] y = new double[a.length];
        for (int i = 0; i < a.length; i++) y[i] = a[i] / s[i];
        return y;
    }

    private static double[] divideRows(double[] w, int rows, int cols, double[] s) {
        double[] y = new double[w.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) y[r * cols + c] = w[r * cols + c] / s[r];
        }
        return y;
    }
}
