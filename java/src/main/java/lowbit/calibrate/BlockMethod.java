package lowbit.calibrate;

/** A block-wise calibration method: its parameters, hooks and loss for each block. */
public interface BlockMethod {
    /** Identifies the method and its settings; a checkpoint only resumes under the same id. */
    String id();

    /**
     * The setup for block {@code index} with frozen weights {@code block}, given the channel
     * statistics of the block's FP pass and a seed for any random initialization.
     */
    BlockSetup prepare(int index, DecoderBlock block, SiteStats stats, long seed);
}
