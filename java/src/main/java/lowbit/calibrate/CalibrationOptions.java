package lowbit.calibrate;

/**
 * Settings of a block-by-block calibration run.
 *
 * @param samples training sequences (FlatQuant: 128)
 * @param heldOutSamples further sequences of the calibration text, never trained on, on which the
 *     block losses are also reported (0 for none)
 * @param seqLen tokens per sequence (FlatQuant: 2048)
 * @param epochs passes over the training sequences per block (FlatQuant: 15)
 * @param batchSize sequences per optimizer step (FlatQuant: 4)
 * @param blocks how many blocks from the first to calibrate (the model's count for all)
 * @param quantizedInputs train block i on the outputs of the calibrated blocks before it instead of
 *     the FP outputs (the target is always the FP block's output on FP inputs)
 * @param lrFloor the cosine schedule's final learning-rate factor (FlatQuant: 1e-3)
 * @param seed seeds the sample order and the methods' random initializations
 * @param progress draw a progress bar on stderr
 */
public record CalibrationOptions(int samples, int heldOutSamples, int seqLen, int epochs, int batchSize, int blocks,
                                 boolean quantizedInputs, double lrFloor, long seed, boolean progress) {
    public CalibrationOptions {
        if (samples < 1 || heldOutSamples < 0 || seqLen < 1 || epochs < 0 || batchSize < 1 || blocks < 1) {
            throw new IllegalArgumentException("bad calibration options: samples " + samples + ", held out " + heldOutSamples + ", seqLen " + seqLen
                    + ", epochs " + epochs + ", batch " + batchSize + ", blocks " + blocks);
        }
        if (batchSize > samples) throw new IllegalArgumentException("batch size " + batchSize + " exceeds the " + samples + " samples");
        if (!(lrFloor >= 0 && lrFloor <= 1)) throw new IllegalArgumentException("learning-rate floor " + lrFloor + " must be in [0, 1]");
    }

    /** FlatQuant's defaults (128 × 2048 tokens, 15 epochs, batch 4, floor 1e-3) over {@code blocks} blocks. */
    public static CalibrationOptions flatQuantDefaults(int blocks) {
        return new CalibrationOptions(128, 0, 2048, 15, 4, blocks, false, 1e-3, 0, true);
    }

    /** The same options with the progress bar off (what identifies a run in its checkpoint). */
    CalibrationOptions withoutProgress() {
        return new CalibrationOptions(samples, heldOutSamples, seqLen, epochs, batchSize, blocks, quantizedInputs, lrFloor, seed, false);
    }

    /** Steps per epoch (a last partial batch is a step of its own). */
    public int stepsPerEpoch() {
        return (samples + batchSize - 1) / batchSize;
    }
}
