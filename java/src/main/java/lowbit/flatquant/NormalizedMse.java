package lowbit.flatquant;

import lowbit.calibrate.BlockLoss;
import lowbit.calibrate.BlockPass;
import lowbit.calibrate.Losses;
import lowbit.calibrate.MatrixOps;
import lowbit.calibrate.Pointwise;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;

/**
 * The authors' training loss: the block-output MSE divided by its own detached value ({@code loss /
 * loss.detach()}), so every step's gradient is {@code ∇MSE / MSE}. The value reported stays the
 * MSE (comparable with the other methods): {@code MSE/c + (MSE − 1)} with {@code c} the constant
 * MSE, which is 1 + (MSE − 1) in value and has gradient {@code ∇MSE / c}.
 */
public final class NormalizedMse implements BlockLoss {
    public static final NormalizedMse INSTANCE = new NormalizedMse();

    private NormalizedMse() {}

    @Override
    public Var loss(Tape tape, BlockPass quantized, Var target) {
        Var mse = Losses.mse(tape, quantized.output(), target);
        double m = mse.scalar();
        if (!(m > 0) || !Double.isFinite(m)) return mse; // nothing to normalize by (exact match) or a non-finite loss the pipeline reports
        Var normalized = MatrixOps.scaleColumns(tape, mse, Var.constant(new double[] {m}, 1, 1), true);
        return Pointwise.add(tape, normalized, Var.constant(new double[] {m - 1}, 1, 1));
    }
}
