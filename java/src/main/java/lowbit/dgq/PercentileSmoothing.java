package lowbit.dgq;

import java.util.Arrays;
import lowbit.quant.CalibrationStats;

/**
 * DGQ's percentile-clipping smoothing: instead of SmoothQuant's {@code max^α / w^(1−α)}, every
 * channel whose statistic {@code a_j} exceeds a baseline is scaled down to it, {@code s_j = a_j /
 * baseline} (else 1), and the weights' column j is multiplied by {@code s_j}. The baseline is the
 * statistic at rank {@code floor((1 − p)·C + 1.5)} from the top over the C channels (p = 0.995 is the
 * authors' {@code int(0.005·C + 1.5)}, about the 99.5th percentile of channel maxima). No α, and
 * {@code s} depends on the activations only, so all layers reading one activation share it (it folds
 * into the producing norm exactly as SmoothQuant's does).
 */
public final class PercentileSmoothing {
    private PercentileSmoothing() {}

    /** Factors from per-channel statistics {@code a} (finite, >= 0) and percentile {@code p ∈ (0, 1]}. */
    public static float[] factors(float[] a, double p) {
        if (!(p > 0 && p <= 1)) throw new IllegalArgumentException("percentile must be in (0, 1], got " + p);
        int c = a.length;
        if (c == 0) throw new IllegalArgumentException("smoothing needs at least one channel");
        float[] sorted = a.clone();
        for (int j = 0; j < c; j++) {
            if (!Float.isFinite(a[j]) || a[j] < 0) {
                throw new IllegalArgumentException("channel statistic " + j + " must be finite and >= 0, got " + a[j]);
            }
        }
        Arrays.sort(sorted);
        int rank = Math.max(1, Math.min(c, (int) ((1 - p) * c + 1.5)));
        float baseline = sorted[c - rank];
        float[] s = new float[c];
        for (int j = 0; j < c; j++) {
            s[j] = baseline > 0 && a[j] > baseline ? a[j] / baseline : 1f;
        }
        return s;
    }

    /**
     * Factors from calibration statistics: {@code a_j} is the channel's exact max |x| when {@code
     * tokenQuantile == 1}, else that quantile of |x[:,j]| from the channel sketch.
     */
    public static float[] factors(CalibrationStats stats, double p, double tokenQuantile) {
        if (stats.tokens() == 0) {
            throw new IllegalArgumentException("calibration for '" + stats.layer() + "' is empty: cannot smooth");
        }
        float[] a;
        if (tokenQuantile >= 1) {
            a = stats.channelAbsMax();
        } else {
            a = new float[stats.channels()];
            for (int j = 0; j < a.length; j++) a[j] = (float) stats.channelQuantile(j, tokenQuantile);
        }
        return factors(a, p);
    }
}
