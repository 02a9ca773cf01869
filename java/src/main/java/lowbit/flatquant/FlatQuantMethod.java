package lowbit.flatquant;

import lowbit.calibrate.BlockLoss;
import lowbit.calibrate.BlockMethod;
import lowbit.calibrate.BlockSetup;
import lowbit.calibrate.DecoderBlock;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.SiteStats;

/**
 * FlatQuant as a {@link BlockMethod} for {@link lowbit.calibrate.BlockwiseCalibration}: per block,
 * the {@link BlockTransforms} (SmoothQuant-style scales from the FP pass, α = {@code alpha}),
 * {@link FlatQuantHooks} under {@code scheme}, two AdamW groups (transforms and scales at {@code
 * transformLr}, clipping logits at {@code clipLr}, no weight decay) and the authors' {@link
 * NormalizedMse} loss ({@code normalizedLoss}; plain MSE otherwise).
 */
public final class FlatQuantMethod implements BlockMethod {
    /** The authors' learning rate of transforms and diagonal scales. */
    public static final double AUTHORS_TRANSFORM_LR = 5e-3;
    /** The authors' learning rate of the clipping factors (10x). */
    public static final double AUTHORS_CLIP_LR = 5e-2;

    private final QuantScheme scheme;
    private final double alpha;
    private final double transformLr;
    private final double clipLr;
    private final boolean normalizedLoss;
    private final java.util.SortedSet<Integer> wideBlocks;

    public FlatQuantMethod(QuantScheme scheme, double alpha, double transformLr, double clipLr, boolean normalizedLoss) {
        this(scheme, alpha, transformLr, clipLr, normalizedLoss, java.util.Set.of());
    }

    /**
     * {@code wideBlocks}: blocks calibrated (and later run) with {@link QuantScheme#widened} instead of
     * {@code scheme}: the sensitive blocks a bit-width policy keeps at 8 bits.
     */
    public FlatQuantMethod(QuantScheme scheme, double alpha, double transformLr, double clipLr, boolean normalizedLoss, java.util.Set<Integer> wideBlocks) {
        if (scheme == null) throw new IllegalArgumentException("a quantization scheme is required");
        if (!(alpha >= 0 && alpha <= 1)) throw new IllegalArgumentException("alpha " + alpha + " must be in [0, 1]");
        if (!(transformLr > 0) || !(clipLr > 0)) throw new IllegalArgumentException("learning rates " + transformLr + ", " + clipLr + " must be > 0");
        this.scheme = scheme;
        this.alpha = alpha;
        this.transformLr = transformLr;
        this.clipLr = clipLr;
        this.normalizedLoss = normalizedLoss;
        if (wideBlocks == null) throw new IllegalArgumentException("wideBlocks must not be null (empty for none)");
        for (int b : wideBlocks) {
            if (b < 0) throw new IllegalArgumentException("block index " + b + " must be >= 0");
        }
        this.wideBlocks = java.util.Collections.unmodifiableSortedSet(new java.util.TreeSet<>(wideBlocks));
    }

    /** The authors' settings: α 0.3, lr 5e-3 / 5e-2, normalized MSE. */
    public static FlatQuantMethod authors(QuantScheme scheme) {
        return new FlatQuantMethod(scheme, BlockTransforms.DEFAULT_ALPHA, AUTHORS_TRANSFORM_LR, AUTHORS_CLIP_LR, true);
    }

    /** The authors' settings with {@code wideBlocks} at 8 bits. */
    public static FlatQuantMethod authors(QuantScheme scheme, java.util.Set<Integer> wideBlocks) {
        return new FlatQuantMethod(scheme, BlockTransforms.DEFAULT_ALPHA, AUTHORS_TRANSFORM_LR, AUTHORS_CLIP_LR, true, wideBlocks);
    }

    /** The scheme block {@code index} is calibrated with. */
    public QuantScheme schemeOf(int index) {
        return wideBlocks.contains(index) ? scheme.widened() : scheme;
    }

    @Override
    public String id() {
        return "flatquant " + scheme + " alpha=" + alpha + " lr=" + transformLr + "/" + clipLr + (normalizedLoss ? " normalized-mse" : " mse")
                + (wideBlocks.isEmpty() ? "" : " w8a8-blocks=" + wideBlocks);
    }

    @Override
    public BlockSetup prepare(int index, DecoderBlock block, SiteStats stats, long seed) {
        if (!(block instanceof LlamaBlock)) throw new IllegalArgumentException("FlatQuant's placement is defined for LLaMA blocks, got " + block.getClass().getSimpleName());
        LlamaBlock lb = (LlamaBlock) block;
        if (lb.bias("attn_v") != null) {
            throw new IllegalArgumentException("attn_v has a bias: the V transform acts on attn_v's outputs and is applied to its weight only during calibration");
        }
        QuantScheme s = schemeOf(index);
        BlockTransforms t = new BlockTransforms("blk." + index + ".", lb, stats, s, alpha, seed);
        BlockLoss loss = normalizedLoss ? NormalizedMse.INSTANCE : BlockLoss.MSE;
        return new BlockSetup(FlatQuantHooks.calibration(t, s), t.groups(transformLr, clipLr), loss);
    }
}
