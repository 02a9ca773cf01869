package lowbit.abq;

import lowbit.Granularity;
import lowbit.calibrate.DistributionCorrection;
import lowbit.calibrate.QuantSpec;

/**
 * What ABQ-LLM calibration does on each LLaMA block ({@link AbqMethod}); every part can be switched
 * off so its effect is measured.
 *
 * @param weightBits weight width, 1..8 (per output channel)
 * @param activationBits activation width, 1..8 asymmetric or 2..8 symmetric (per token, dynamic)
 * @param bitBalance ABQ-LLM's W2* grid for ≤ 2-bit asymmetric weights: 2^bits + 1 levels
 * @param symmetric symmetric weights and activations instead of ABQ-LLM's default asymmetric ones
 * @param lwc learnable weight clipping (sigmoid factors per output channel, logit 4 init)
 * @param let learnable equivalent smoothing scales (init {@code act^α / w^(1−α)})
 * @param compensation the low-rank compensation {@code W + a·bᵀ} on ffn_down in the first 3 and
 *     last 4 blocks
 * @param loss the distribution-correction terms ({@link DistributionCorrection#none()}: MSE only)
 * @param alpha the smoothing init's migration strength (the authors: 0.5)
 * @param letLr learning rate of the smoothing scales (the authors: 5e-3)
 * @param lwcLr learning rate of the clip logits (the authors: 1e-2)
 * @param compensationLr learning rate of the compensation vectors (the authors: 1e-2)
 */
public record AbqConfig(int weightBits, int activationBits, boolean bitBalance, boolean symmetric, boolean lwc, boolean let,
                        boolean compensation, DistributionCorrection loss, double alpha, double letLr, double lwcLr,
                        double compensationLr) {
    public AbqConfig {
        if (loss == null) throw new IllegalArgumentException("a loss is required (DistributionCorrection.none() for plain MSE)");
        if (symmetric && bitBalance) {
            throw new IllegalArgumentException("bit balance is calibrated on ABQ-LLM's asymmetric 2^bits + 1 level grid; use asymmetric weights with it");
        }
        new WeightQuantizer(weightBits, !symmetric, bitBalance, 0); // validates the widths
        new ActivationQuantizer(activationBits, !symmetric);
        if (!(alpha >= 0 && alpha <= 1)) throw new IllegalArgumentException("alpha " + alpha + " must be in [0, 1]");
        if (!(letLr > 0) || !(lwcLr > 0) || !(compensationLr > 0)) {
            throw new IllegalArgumentException("learning rates must be > 0, got " + letLr + ", " + lwcLr + ", " + compensationLr);
        }
    }

    /**
     * The authors' calibration at W{@code weightBits}A{@code activationBits} (asymmetric, LWC, LET
     * α = 0.5, compensation, lr 5e-3 / 1e-2 / 1e-2), with all distribution-correction terms when
     * {@code distributionCorrection}, else MSE only.
     */
    public static AbqConfig authors(int weightBits, int activationBits, boolean bitBalance, boolean distributionCorrection) {
        return new AbqConfig(weightBits, activationBits, bitBalance, false, true, true, true,
                distributionCorrection ? DistributionCorrection.all() : DistributionCorrection.none(), 0.5, 5e-3, 1e-2, 1e-2);
    }

    /** Round to nearest at the same widths: nothing learned (the baseline beside {@link #authors}). */
    public static AbqConfig roundToNearest(int weightBits, int activationBits, boolean bitBalance) {
        return new AbqConfig(weightBits, activationBits, bitBalance, false, false, false, false, DistributionCorrection.none(), 0.5, 5e-3,
                1e-2, 1e-2);
    }

    /** True when calibration has something to learn. */
    public boolean learns() {
        return lwc || let || compensation;
    }

    /** The fake quantizer of the weights during calibration (per output channel). */
    public QuantSpec weightSpec() {
        return new QuantSpec(weightBits, symmetric, Granularity.PER_ROW, 0, bitBalance);
    }

    /** The fake quantizer of the linear inputs during calibration (per token). */
    public QuantSpec activationSpec() {
        return new QuantSpec(activationBits, symmetric, Granularity.PER_ROW, 0, false);
    }

    /** The real weight quantizer (per output channel) that {@link AbqLinear} runs. */
    public WeightQuantizer weightQuantizer() {
        return new WeightQuantizer(weightBits, !symmetric, bitBalance, 0);
    }

    /** The real per-token activation quantizer that {@link AbqLinear} runs. */
    public ActivationQuantizer activationQuantizer() {
        return new ActivationQuantizer(activationBits, !symmetric);
    }

    /** {@code W4A4}, {@code W2*A8}, ... */
    public String widths() {
        return "W" + weightBits + (bitBalance ? "*" : "") + "A" + activationBits;
    }

    @Override
    public String toString() {
        return "abq " + widths() + (symmetric ? " symmetric" : " asymmetric") + (lwc ? " lwc(lr " + lwcLr + ")" : "")
                + (let ? " let(alpha " + alpha + ", lr " + letLr + ")" : "") + (compensation ? " comp(lr " + compensationLr + ")" : "") + " " + loss;
    }
}
