package lowbit.calibrate;

import java.util.List;

/**
 * What calibrating one block achieved: the block-output loss (the method's loss, MSE by default,
 * against the FP block on FP inputs) before training (the method's initial parameters) and after,
 * on the training samples and on the held-out samples (NaN without any), the mean loss of each
 * epoch, and the wall time.
 */
public record BlockReport(int block, double initialLoss, double finalLoss, double heldOutInitialLoss, double heldOutFinalLoss,
                          List<Double> epochLosses, int steps, double seconds) {
    public BlockReport {
        epochLosses = List.copyOf(epochLosses);
    }
}
