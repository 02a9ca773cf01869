package lowbit;

import java.util.function.IntFunction;

/**
 * The native tensors one call of a quantized linear layer works in, for {@link ScratchPool}: the
 * F32 input ({@code tokens × k}), its quantized form (allocated by the layer, which knows its
 * bits, granularity and any static scale) and the F32 output ({@code tokens × n}).
 */
public final class LayerScratch implements ScratchPool.Scratch {
    private final int tokens;
    public final Tensor x;
    public final QuantizedTensor qa;
    public final Tensor out;

    public LayerScratch(Context ctx, int tokens, int k, int n, IntFunction<QuantizedTensor> quantizedActivations) {
        this.tokens = tokens;
        Tensor xt = null;
        QuantizedTensor q = null;
        try {
            xt = ctx.allocate(DType.F32, tokens, k);
            q = quantizedActivations.apply(tokens);
            this.out = ctx.allocate(DType.F32, tokens, n);
        } catch (RuntimeException e) {
            if (xt != null) xt.close();
            if (q != null) q.close();
            throw e;
        }
        this.x = xt;
        this.qa = q;
    }

    @Override
    public int tokens() {
        return tokens;
    }

    @Override
    public void close() {
        x.close();
        qa.close();
        out.close();
    }
}
