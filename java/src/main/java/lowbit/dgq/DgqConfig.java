package lowbit.dgq;

import java.util.Objects;

/**
 * Settings of DGQ quantization for one linear layer.
 *
 * @param group input columns per integer group scale (G; must divide K): 128 default, 64 / 32 allowed
 * @param format weight code format
 * @param activations activation quantization
 * @param smoothingPercentile the baseline of percentile-clipping smoothing is the channel statistic
 *     at rank {@code floor((1 − p)·C + 1.5)} from the top ({@code p = 0.995}: the authors' {@code
 *     int(0.005·C + 1.5)}); NaN turns smoothing off
 * @param tokenQuantile the per-channel statistic: 1 = the channel's max |x| (the authors' code), below
 *     1 that quantile of |x[:,j]| from {@link lowbit.quant.CalibrationStats}' sketch (the "high
 *     percentile of |X_j|")
 * @param phase1Candidates clip ratios of the group search (20 in the authors' code)
 * @param phase2Candidates channel-scale ratios (80 in the authors' code)
 * @param searchTokens calibration tokens (from the stats' sample) the output error is measured on
 */
public record DgqConfig(int group, WeightFormat format, ActivationMode activations, double smoothingPercentile,
                        double tokenQuantile, int phase1Candidates, int phase2Candidates, int searchTokens) {
    public DgqConfig {
        Objects.requireNonNull(format, "format");
        Objects.requireNonNull(activations, "activations");
        if (group < 1) throw new IllegalArgumentException("group size must be >= 1, got " + group);
        if (!Double.isNaN(smoothingPercentile) && !(smoothingPercentile > 0 && smoothingPercentile <= 1)) {
            throw new IllegalArgumentException("smoothing percentile must be in (0, 1] or NaN (off), got " + smoothingPercentile);
        }
        if (!(tokenQuantile > 0 && tokenQuantile <= 1)) {
            throw new IllegalArgumentException("token quantile must be in (0, 1], got " + tokenQuantile);
        }
        if (phase1Candidates < 1 || phase2Candidates < 1) {
            throw new IllegalArgumentException("grid searches need >= 1 candidate, got " + phase1Candidates + " and "
                    + phase2Candidates);
        }
        if (searchTokens < 0) throw new IllegalArgumentException("search tokens must be >= 0, got " + searchTokens);
    }

    /**
     * G = 128, asymmetric UINT4 codes with INT8 zero points, per-token activations, smoothing off,
     * the authors' 20 + 80 candidates, 128 search tokens. Chosen by measurement ({@link
     * DgqMeasurement}: synthetic 512 x 1024 layer, 5 outlier channels x30, held-out tokens): the
     * asymmetric format halves the symmetric one's relative output error (G=128 per token: 1.15e-2 vs
     * 1.93e-2; RTN W4A8 per channel 9.42e-2); per-token beats static per-tensor (2.57e-2), and with
     * per-token activations percentile smoothing raised the error (2.19e-2) by moving the outliers
     * into the weight groups, while it helps the static mode (2.21e-2 vs 2.57e-2). Use {@code
     * withSmoothing(0.995, 1)} for the authors' setting.
     */
    public static DgqConfig defaults() {
        return new DgqConfig(128, WeightFormat.ASYMMETRIC_UINT4, ActivationMode.PER_TOKEN, Double.NaN, 1.0, 20, 80, 128);
    }

    public DgqConfig withGroup(int g) {
        return new DgqConfig(g, format, activations, smoothingPercentile, tokenQuantile, phase1Candidates, phase2Candidates, searchTokens);
    }

    public DgqConfig withFormat(WeightFormat f) {
        return new DgqConfig(group, f, activations, smoothingPercentile, tokenQuantile, phase1Candidates, phase2Candidates, searchTokens);
    }

    public DgqConfig withActivations(ActivationMode a) {
        return new DgqConfig(group, format, a, smoothingPercentile, tokenQuantile, phase1Candidates, phase2Candidates, searchTokens);
    }

    public DgqConfig withSmoothing(double percentile, double quantile) {
        return new DgqConfig(group, format, activations, percentile, quantile, phase1Candidates, phase2Candidates, searchTokens);
    }

    public DgqConfig withSearch(int phase1, int phase2, int tokens) {
        return new DgqConfig(group, format, activations, smoothingPercentile, tokenQuantile, phase1, phase2, tokens);
    }
}
