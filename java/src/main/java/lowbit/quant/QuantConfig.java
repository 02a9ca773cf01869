package lowbit.quant;

import java.util.Arrays;

/**
 * Settings of the FlattenQuant search and quantizers. Immutable; change one field with the {@code
 * with...} methods, starting from {@link #defaults()}.
 *
 * @param weightGranularity one weight scale per output channel (default) or per tensor
 * @param clipSearch how weight clip ratios are chosen: none, minimizing weight MSE (default) or
 *     output MSE on the calibration sample; a clip ratio c quantizes with {@code amax * c}
 * @param clipRatios candidate clip ratios in (0, 1]
 * @param activationScale static (calibrated per-tensor amax of the flattened activations, default),
 *     dynamic per tensor (per call) or dynamic per token
 * @param expansionBudget the largest allowed K'/K of flattening, >= 1 (default 1.25)
 * @param smoothingAlphas SmoothQuant alphas tried besides no smoothing (default 0.5 and 0.75)
 * @param thresholdCandidates thresholds tried per alpha, geometrically spaced between the smallest
 *     the budget allows and the largest channel max (no flattening), >= 1
 * @param padMultiple K' is padded with zero channels to a multiple of this (GEMM K-tile), >= 1
 */
public record QuantConfig(WeightGranularity weightGranularity, ClipSearch clipSearch, double[] clipRatios,
                          ActivationScale activationScale, double expansionBudget, double[] smoothingAlphas,
                          int thresholdCandidates, int padMultiple) {

    public enum WeightGranularity { PER_OUTPUT_CHANNEL, PER_TENSOR }

    public enum ClipSearch { NONE, WEIGHT_MSE, OUTPUT_MSE }

    /**
     * STATIC: one calibrated per-tensor scale; DYNAMIC: one per-tensor scale per call;
     * DYNAMIC_PER_TOKEN: one scale per token row per call (the per-token baseline, not FlattenQuant).
     */
    public enum ActivationScale { STATIC, DYNAMIC, DYNAMIC_PER_TOKEN }

    public QuantConfig {
        if (weightGranularity == null || clipSearch == null || activationScale == null) {
            throw new IllegalArgumentException("granularity, clip search and activation scale mode must be set");
        }
        if (!(expansionBudget >= 1) || Double.isInfinite(expansionBudget)) {
            throw new IllegalArgumentException("expansion budget K'/K must be a finite number >= 1 (1 = no flattening), got "
                    + expansionBudget);
        }
        clipRatios = clipRatios.clone();
        if (clipRatios.length == 0) {
            throw new IllegalArgumentException("clip ratios must not be empty (use {1.0} for no clipping)");
        }
        for (double c : clipRatios) {
            if (!(c > 0 && c <= 1)) {
                throw new IllegalArgumentException("clip ratio must be in (0, 1], got " + c);
            }
        }
        smoothingAlphas = smoothingAlphas.clone();
        for (double a : smoothingAlphas) {
            if (!(a >= 0 && a <= 1)) {
                throw new IllegalArgumentException("smoothing alpha must be in [0, 1], got " + a);
            }
        }
        if (thresholdCandidates < 1) {
            throw new IllegalArgumentException("threshold candidates must be >= 1, got " + thresholdCandidates);
        }
        if (padMultiple < 1) {
            throw new IllegalArgumentException("pad multiple must be >= 1, got " + padMultiple);
        }
    }

    public static QuantConfig defaults() {
        return new QuantConfig(WeightGranularity.PER_OUTPUT_CHANNEL, ClipSearch.WEIGHT_MSE,
                new double[] {1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7}, ActivationScale.STATIC, 1.25,
                new double[] {0.5, 0.75}, 12, 1);
    }

    @Override
    public double[] clipRatios() {
        return clipRatios.clone();
    }

    @Override
    public double[] smoothingAlphas() {
        return smoothingAlphas.clone();
    }

    public QuantConfig withWeightGranularity(WeightGranularity g) {
        return new QuantConfig(g, clipSearch, clipRatios, activationScale, expansionBudget, smoothingAlphas, thresholdCandidates, padMultiple);
    }

    public QuantConfig withClipSearch(ClipSearch c) {
        return new QuantConfig(weightGranularity, c, clipRatios, activationScale, expansionBudget, smoothingAlphas, thresholdCandidates, padMultiple);
    }

    public QuantConfig withActivationScale(ActivationScale a) {
        return new QuantConfig(weightGranularity, clipSearch, clipRatios, a, expansionBudget, smoothingAlphas, thresholdCandidates, padMultiple);
    }

    public QuantConfig withExpansionBudget(double budget) {
        return new QuantConfig(weightGranularity, clipSearch, clipRatios, activationScale, budget, smoothingAlphas, thresholdCandidates, padMultiple);
    }

    public QuantConfig withSmoothingAlphas(double... alphas) {
        return new QuantConfig(weightGranularity, clipSearch, clipRatios, activationScale, expansionBudget, alphas, thresholdCandidates, padMultiple);
    }

    public QuantConfig withThresholdCandidates(int n) {
        return new QuantConfig(weightGranularity, clipSearch, clipRatios, activationScale, expansionBudget, smoothingAlphas, n, padMultiple);
    }

    public QuantConfig withPadMultiple(int m) {
        return new QuantConfig(weightGranularity, clipSearch, clipRatios, activationScale, expansionBudget, smoothingAlphas, thresholdCandidates, m);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuantConfig c && c.weightGranularity == weightGranularity && c.clipSearch == clipSearch
                && Arrays.equals(c.clipRatios, clipRatios) && c.activationScale == activationScale
                && c.expansionBudget == expansionBudget && Arrays.equals(c.smoothingAlphas, smoothingAlphas)
                && c.thresholdCandidates == thresholdCandidates && c.padMultiple == padMultiple;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(clipRatios) * 31 + Arrays.hashCode(smoothingAlphas) + Double.hashCode(expansionBudget);
    }

    @Override
    public String toString() {
        return "QuantConfig[" + weightGranularity + ", clip " + clipSearch + " " + Arrays.toString(clipRatios) + ", "
                + activationScale + " activations, budget " + expansionBudget + ", alphas " + Arrays.toString(smoothingAlphas)
                + ", " + thresholdCandidates + " thresholds, pad " + padMultiple + "]";
    }
}
