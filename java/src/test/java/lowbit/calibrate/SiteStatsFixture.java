package lowbit.calibrate;

/** Test access to {@link SiteStats}' collector from other packages. */
public final class SiteStatsFixture {
    private SiteStatsFixture() {}

    /** The channel maxima of {@code block}'s FP pass on {@code x}. */
    public static SiteStats collect(DecoderBlock block, Var x, int seqLen) {
        SiteStats s = new SiteStats();
        block.forward(Tape.fp64(), x, seqLen, s.hooks());
        return s;
    }
}
