package lowbit.calibrate;

/**
 * How a method changes a decoder block: for each forward pass ({@link #open} per tape) it may
 * replace the activation at each {@link Site} (transform, clip, fake-quantize) and the weight each
 * linear layer multiplies by (transform, compensate, fake-quantize), building learnable parameters
 * into the graph. {@link #NONE} leaves the block full precision.
 */
@FunctionalInterface
public interface BlockHooks {
    BlockHooks NONE = tape -> new Pass() {};

    /** The hooks of one forward pass on {@code tape} (the place to compute per-pass matrices once). */
    Pass open(Tape tape);

    /** Hooks of one pass; each is called at most once per site or linear layer. */
    interface Pass {
        /** The activation at {@code site} as the block continues with it. */
        default Var activation(Site site, Var x) {
            return x;
        }

        /** The weight ({@code [out][in]}) linear layer {@code linear} multiplies by. */
        default Var weight(String linear, Var w) {
            return w;
        }
    }
}
