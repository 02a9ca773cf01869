package lowbit.quant;

import java.util.SplittableRandom;

/**
 * Activations with the outlier structure of LLM hidden states, for experiments and tests: ordinary
 * channels are heavy-tailed (Student-t, 4 degrees of freedom) with per-channel scales spread
 * log-normally around 1; a few outlier channels have a fixed sign and a magnitude 20-100x the
 * median channel, varying per token (a log-normal gain per token and a per-value jitter).
 */
final class SyntheticActivations {
    final int channels;
    final float[] channelScale;
    final int[] outlierChannels;
    final float[] outlierMagnitude;

    SyntheticActivations(int channels, int outliers, long seed) {
        if (outliers > channels) {
            throw new IllegalArgumentException(outliers + " outlier channels out of " + channels);
        }
        SplittableRandom r = new SplittableRandom(seed);
        this.channels = channels;
        channelScale = new float[channels];
        for (int j = 0; j < channels; j++) {
            channelScale[j] = (float) Math.exp(0.5 * gaussian(r));
        }
        outlierChannels = new int[outliers];
        outlierMagnitude = new float[outliers];
        boolean[] used = new boolean[channels];
        for (int i = 0; i < outliers; i++) {
            int c;
            do {
                c = r.nextInt(channels);
            } while (used[c]);
            used[c] = true;
            outlierChannels[i] = c;
            outlierMagnitude[i] = (float) ((r.nextBoolean() ? 1 : -1) * (20 + 80 * r.nextDouble()));
        }
    }

    /** {@code tokens x channels} activations. */
    float[] tokens(int tokens, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[tokens * channels];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < channels; j++) {
                x[t * channels + j] = (float) (channelScale[j] * studentT4(r));
            }
            double gain = Math.exp(0.4 * gaussian(r));
            for (int i = 0; i < outlierChannels.length; i++) {
                x[t * channels + outlierChannels[i]] = (float) (outlierMagnitude[i] * gain * (0.6 + 0.4 * Math.abs(gaussian(r))));
            }
        }
        return x;
    }

    /** N(0, 1/K) weights, {@code rows x channels}. */
    static float[] weights(int rows, int channels, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] w = new float[rows * channels];
        double sd = 1 / Math.sqrt(channels);
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (sd * gaussian(r));
        }
        return w;
    }

    static double gaussian(SplittableRandom r) {
        double u = 1 - r.nextDouble();
        return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.nextDouble());
    }

    private static double studentT4(SplittableRandom r) {
        double chi2 = 0;
        for (int i = 0; i < 4; i++) {
            double g = gaussian(r);
            chi2 += g * g;
        }
        return gaussian(r) / Math.sqrt(chi2 / 4);
    }
}
