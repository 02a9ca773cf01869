package lowbit.calibrate;

import java.util.List;

/** A differentiable transformer block with frozen weights ({@link LlamaBlock}, {@link OptBlock}). */
public interface DecoderBlock {
    /** Hidden size: the width of the block's input and output rows. */
    int dim();

    /** Names of the linear layers in the order they run. */
    List<String> linears();

    /** The frozen weight {@code [out][in]} of a linear layer (a constant; do not modify its values). */
    Var weight(String linear);

    /**
     * Runs the block on {@code x} ({@code sequences·seqLen × dim}, whole sequences one after the
     * other, each starting at position 0) with {@code hooks} applied.
     */
    BlockPass forward(Tape tape, Var x, int seqLen, BlockHooks hooks);
}
