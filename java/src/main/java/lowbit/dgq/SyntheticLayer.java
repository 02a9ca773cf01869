package lowbit.dgq;

import java.util.Random;
import lowbit.quant.CalibrationStats;

/**
 * A synthetic linear layer with LLM-like activation outliers, for measurements and tests: weights
 * {@code N(0, 0.02²)} with 1% of entries ×4 (heavy tails); activations {@code N(0, 1)} per element
 * times a per-token magnitude in {@code [0.5, 2]}, and {@code outlierChannels} fixed input channels
 * scaled by {@code outlierScale} (×U[0.5, 1]) in every token, as in the massive-activation channels
 * of real models.
 */
public record SyntheticLayer(int n, int k, float[] weight, float[] bias) {
    public static SyntheticLayer create(long seed, int n, int k) {
        Random rnd = new Random(seed);
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.02 * (rnd.nextInt(100) == 0 ? 4 : 1));
        float[] b = new float[n];
        for (int j = 0; j < n; j++) b[j] = (float) (rnd.nextGaussian() * 0.1);
        return new SyntheticLayer(n, k, w, b);
    }

    /** {@code tokens × k} activations; the outlier channels are the same for every seed. */
    public float[] activations(long seed, int tokens, int outlierChannels, double outlierScale) {
        Random channels = new Random(12345);
        int[] out = new int[outlierChannels];
        for (int i = 0; i < outlierChannels; i++) out[i] = channels.nextInt(k);
        Random rnd = new Random(seed);
        float[] x = new float[tokens * k];
        for (int t = 0; t < tokens; t++) {
            double mag = 0.5 + 1.5 * rnd.nextDouble();
            for (int j = 0; j < k; j++) x[t * k + j] = (float) (rnd.nextGaussian() * mag);
            for (int c : out) x[t * k + c] *= (float) (outlierScale * (0.5 + 0.5 * rnd.nextDouble()));
        }
        return x;
    }

    /** Calibration statistics of {@code x} ({@code tokens × k}), sampling up to {@code sample} tokens. */
    public CalibrationStats calibrate(float[] x, int tokens, int sample) {
        CalibrationStats s = CalibrationStats.create("synthetic", k, CalibrationStats.Options.defaults().withSampleTokens(sample));
        s.observe(x, tokens);
        return s;
    }
}
