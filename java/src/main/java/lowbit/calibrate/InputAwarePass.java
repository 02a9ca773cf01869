package lowbit.calibrate;

/**
 * A {@link BlockHooks.Pass} that is also shown the block's input before the block runs (the
 * residual stream {@code x}, not a normalized activation), so that a loss can run the full-precision
 * block on the same input (ABQ-LLM's "FP block fed the quantized input", see {@link
 * DistributionCorrection}). {@link LlamaBlock} and {@link OptBlock} call it; it changes nothing in
 * the pass.
 */
public interface InputAwarePass extends BlockHooks.Pass {
    /** The input of this pass ({@code sequences·seqLen × dim}) and its sequence length. */
    void input(Var x, int seqLen);
}
