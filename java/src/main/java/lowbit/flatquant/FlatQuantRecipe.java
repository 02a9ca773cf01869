package lowbit.flatquant;

import lowbit.calibrate.CalibrationOptions;

/**
 * Calibration run settings for FlatQuant. {@link #authors}: the authors' defaults ({@code
 * train_utils.cali_flat_quant}, {@code args_utils.py}): 128 sequences × 2048 tokens of calibration
 * text, 15 epochs, batch 4 (480 AdamW steps per block), cosine decay to 1e-3 of the rate; with
 * {@link FlatQuantMethod#authors} (lr 5e-3 transforms and scales, 5e-2 clipping, α 0.3, normalized
 * MSE). {@link #fast}: a configuration a 2-core CPU finishes in minutes per block: 16 sequences × 256
 * tokens, 4 epochs, batch 2 (32 steps per block), same learning rates and schedule shape.
 */
public final class FlatQuantRecipe {
    private FlatQuantRecipe() {}

    public static CalibrationOptions authors(int blocks, long seed) {
        return new CalibrationOptions(128, 0, 2048, 15, 4, blocks, false, 1e-3, seed, true);
    }

    public static CalibrationOptions fast(int blocks, int heldOut, long seed) {
        return new CalibrationOptions(16, heldOut, 256, 4, 2, blocks, false, 1e-3, seed, true);
    }
}
