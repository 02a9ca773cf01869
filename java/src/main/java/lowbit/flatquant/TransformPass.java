package lowbit.flatquant;

import lowbit.calibrate.Kronecker;
import lowbit.calibrate.KroneckerTransform;
import lowbit.calibrate.MatrixOps;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;

/**
 * A block's {@link BlockTransforms} bound to one tape (every factor's {@code P} and {@code P⁻ᵀ}
 * computed once), with the operations the hooks and the offline folding are made of. Activation
 * sides multiply by {@code P}, weight sides by {@code P⁻ᵀ}; per-channel scales divide activations
 * and multiply weight columns.
 */
final class TransformPass {
    private final Tape tape;
    private final BlockTransforms t;
    private final KroneckerTransform.Bound qkv;
    private final KroneckerTransform.Bound up;
    private final KroneckerTransform.Bound down;
    private final Var[] o;
    private final Var[] v;
    private final Var[] k;
    private final Var identityHeads;
    private final Var identityKvHeads;
    private final Var identityHead;

    TransformPass(Tape tape, BlockTransforms t) {
        this.tape = tape;
        this.t = t;
        this.qkv = t.qkv.bind(tape);
        this.up = t.up.bind(tape);
        this.down = t.down.bind(tape);
        this.o = t.o.matrixAndInverseTranspose(tape);
        this.v = t.v.matrixAndInverseTranspose(tape);
        this.k = t.k.matrixAndInverseTranspose(tape);
        this.identityHeads = identity(t.config.headCount());
        this.identityKvHeads = identity(t.config.kvHeadCount());
        this.identityHead = identity(t.config.headDim());
    }

    /** The online Kronecker transform of a linear input (attention input, FFN input or down input); {@code scaled}: divide by the channel scale first. */
    Var input(lowbit.calibrate.Site site, Var x, boolean scaled) {
        switch (site) {
            case ATTN_IN:
                return qkv.activations(scaled ? t.qkvScale.activations(tape, x) : x);
            case FFN_IN:
                return up.activations(scaled ? t.upScale.activations(tape, x) : x);
            case FFN_DOWN_IN:
                return down.activations(scaled ? t.downScale.activations(tape, x) : x);
            case ATTN_OUT_IN:
                return Kronecker.apply(tape, x, o[0], identityHead); // Pv already arrived through the values
            default:
                throw new IllegalArgumentException("no linear-input transform at " + site);
        }
    }

    /** {@code q·(I ⊗ Pk⁻ᵀ)} after RoPE. */
    Var query(Var q) {
        return Kronecker.apply(tape, q, identityHeads, k[1]);
    }

    /** {@code k·(I ⊗ Pk)} after RoPE: what the K cache stores. */
    Var key(Var key) {
        return Kronecker.apply(tape, key, identityKvHeads, k[0]);
    }

    /**
     * The transformed weight ({@code [out][in]}) of a linear layer: input columns times the channel
     * scale (q/k/v, gate/up, down), then {@code ·P⁻ᵀ}; attn_v's output rows also by {@code (I ⊗
     * Pv)ᵀ} (its outputs become {@code v·(I ⊗ Pv)}); attn_output by {@code (Po ⊗ Pv)⁻ᵀ}.
     */
    Var weight(String linear, Var w) {
        switch (linear) {
            case "attn_q":
            case "attn_k":
                return qkv.weight(t.qkvScale.weight(tape, w));
            case "attn_v":
                return valueRows(qkv.weight(t.qkvScale.weight(tape, w)));
            case "attn_output":
                return Kronecker.apply(tape, w, o[1], v[1]);
            case "ffn_gate":
            case "ffn_up":
                return up.weight(t.upScale.weight(tape, w));
            case "ffn_down":
                return down.weight(t.downScale.weight(tape, w));
            default:
                throw new IllegalArgumentException("not a LLaMA block linear layer: " + linear);
        }
    }

    /** {@code (I ⊗ Pv)ᵀ·W}: the rows of each KV head's block of attn_v multiplied by Pvᵀ. */
    Var valueRows(Var w) {
        return MatrixOps.transpose(tape, Kronecker.apply(tape, MatrixOps.transpose(tape, w), identityKvHeads, v[0]));
    }

    /** A {@code 1 × kvDim} bias of attn_v transformed like its outputs: {@code b·(I ⊗ Pv)}. */
    Var valueBias(Var b) {
        return Kronecker.apply(tape, b, identityKvHeads, v[0]);
    }

    private static Var identity(int n) {
        double[] a = new double[n * n];
        for (int i = 0; i < n; i++) a[i * n + i] = 1;
        return Var.constant(a, n, n);
    }
}
