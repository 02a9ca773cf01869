package lowbit.flatquant;

import lowbit.calibrate.BlockHooks;
import lowbit.calibrate.Site;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;

/**
 * FlatQuant in a LLaMA block's forward pass. Per pass the transforms are bound once; then
 *
 * <ul>
 *   <li>attention input, FFN input, down input: divided by the channel scale, times {@code P1 ⊗ P2},
 *       fake-quantized per token with the site's learnable clip;
 *   <li>attention output (attn_output's input): times {@code Po ⊗ I} on the head axis (the values
 *       already carry Pv), fake-quantized per token;
 *   <li>queries and keys after RoPE: times {@code I ⊗ Pk⁻ᵀ} and {@code I ⊗ Pk}; keys and values
 *       fake-quantized when the scheme quantizes the KV cache;
 *   <li>weights: transformed ({@link TransformPass#weight}), fake-quantized per output channel with
 *       learnable clipping.
 * </ul>
 *
 * {@code folded}: the block's weights and norms already hold every offline part ({@link Folding}):
 * the weights are not transformed and activations are not divided by the scales; only the online
 * transforms run. {@code scheme} null: no quantization at all (the transformed block is then the FP
 * block's function).
 */
public final class FlatQuantHooks implements BlockHooks {
    private final BlockTransforms transforms;
    private final QuantScheme scheme;
    private final boolean folded;
    private final Quantizer quantizer;

    public FlatQuantHooks(BlockTransforms transforms, QuantScheme scheme, boolean folded, Quantizer quantizer) {
        if (transforms == null || quantizer == null) throw new IllegalArgumentException("transforms and a quantizer are required");
        this.transforms = transforms;
        this.scheme = scheme;
        this.folded = folded;
        this.quantizer = quantizer;
    }

    /** Calibration hooks: unfolded weights, the engine's fake quantizer. */
    public static FlatQuantHooks calibration(BlockTransforms transforms, QuantScheme scheme) {
        return new FlatQuantHooks(transforms, scheme, false, Quantizer.FAKE_QUANT);
    }

    @Override
    public Pass open(Tape tape) {
        TransformPass p = new TransformPass(tape, transforms);
        return new Pass() {
            @Override
            public Var activation(Site site, Var x) {
                switch (site) {
                    case ATTN_IN:
                    case FFN_IN:
                    case FFN_DOWN_IN:
                        return activations(site, p.input(site, x, !folded));
                    case ATTN_OUT_IN:
                        return activations(site, p.input(site, x, false));
                    case QUERY:
                        return p.query(x);
                    case KEY:
                        return cache(site, p.key(x));
                    case VALUE:
                        return cache(site, x);
                    default:
                        throw new IllegalArgumentException("FlatQuant has no rule for site " + site);
                }
            }

            @Override
            public Var weight(String linear, Var w) {
                Var tw = folded ? w : p.weight(linear, w);
                return scheme == null ? tw : quantizer.apply(tape, tw, scheme.weights(), transforms.weightClip(linear), linear);
            }

            private Var activations(Site site, Var x) {
                return scheme == null ? x : quantizer.apply(tape, x, scheme.activations(), transforms.activationClip(site), site.name());
            }

            private Var cache(Site site, Var x) {
                return scheme == null || scheme.kv() == null ? x : quantizer.apply(tape, x, scheme.kv(), transforms.activationClip(site), site.name());
            }
        };
    }
}
