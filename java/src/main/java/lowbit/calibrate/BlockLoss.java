package lowbit.calibrate;

/** A block's training loss from its hooked forward pass and the FP target output ({@code Losses.mse} by default). */
@FunctionalInterface
public interface BlockLoss {
    BlockLoss MSE = (tape, pass, target) -> Losses.mse(tape, pass.output(), target);

    Var loss(Tape tape, BlockPass quantized, Var target);
}
