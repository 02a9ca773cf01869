package lowbit.quant;

import java.util.Objects;

/**
 * Activation statistics of one linear layer's input, gathered by streaming calibration tokens
 * through {@link #observe}. Memory is fixed at creation and does not grow with the number of
 * tokens.
 *
 * <p>Kept per input channel j: the exact {@code m_j = max_t |x[t][j]|} and a log-histogram quantile
 * sketch of {@code |x[:,j]|}; per tensor: the exact {@code max |x|} and a finer sketch of all
 * {@code |x|}; and a uniform sample of up to {@link Options#sampleTokens} token rows (reservoir
 * sampling), on which threshold search measures output error. A sketch with {@code b} bins per
 * octave answers a quantile with relative error at most {@code 1/(2b)} (defaults: 12.5% per channel,
 * 1.6% per tensor; see {@link Options}). Memory: {@code 4 * (2 + (maxExp-minExp) * b)} bytes per
 * channel sketch plus {@code 4 * sampleTokens * K} bytes of sample.
 *
 * <p>Stats from disjoint token streams combine with {@link #merge} (maxima and histograms exactly;
 * the sample stays a uniform sample) and persist with {@link CalibrationFile}. NaN or infinite
 * activations are rejected, never absorbed.
 */
public final class CalibrationStats {
    /**
     * Sketch and sample sizes.
     *
     * @param channelBinsPerOctave bins per octave of each per-channel sketch (power of two)
     * @param tensorBinsPerOctave bins per octave of the per-tensor sketch (power of two)
     * @param minExponent |x| below 2^minExponent falls in the underflow bin
     * @param maxExponent |x| at or above 2^maxExponent falls in the overflow bin
     * @param sampleTokens token rows kept for threshold search
     * @param seed seed of the reservoir sampler
     */
    public record Options(int channelBinsPerOctave, int tensorBinsPerOctave, int minExponent, int maxExponent,
                          int sampleTokens, long seed) {
        /** 4 and 32 bins per octave over [2^-32, 2^32), 256 sampled tokens, seed 0. */
        public static Options defaults() {
            return new Options(4, 32, -32, 32, 256, 0L);
        }

        public Options withSampleTokens(int tokens) {
            return new Options(channelBinsPerOctave, tensorBinsPerOctave, minExponent, maxExponent, tokens, seed);
        }
    }

    final String layer;
    final Options options;
    final LogHistogram tensorSketch;
    final LogHistogram[] channelSketches;
    final TokenReservoir sample;

    CalibrationStats(String layer, int channels, Options options) {
        this(layer, channels, options, Objects.requireNonNull(options, "options").seed());
    }

    CalibrationStats(String layer, int channels, Options options, long samplerSeed) {
        this.layer = Objects.requireNonNull(layer, "layer name");
        this.options = Objects.requireNonNull(options, "options");
        if (channels < 1) {
            throw new IllegalArgumentException("layer '" + layer + "' needs at least 1 input channel, got " + channels);
        }
        this.tensorSketch = new LogHistogram(options.tensorBinsPerOctave(), options.minExponent(), options.maxExponent());
        this.channelSketches = new LogHistogram[channels];
        for (int j = 0; j < channels; j++) {
            channelSketches[j] = new LogHistogram(options.channelBinsPerOctave(), options.minExponent(), options.maxExponent());
        }
        this.sample = new TokenReservoir(options.sampleTokens(), channels, samplerSeed);
    }

    /** Empty statistics for the input of layer {@code layer} with {@code channels} channels. */
    public static CalibrationStats create(String layer, int channels) {
        return new CalibrationStats(layer, channels, Options.defaults());
    }

    public static CalibrationStats create(String layer, int channels, Options options) {
        return new CalibrationStats(layer, channels, options);
    }

    /**
     * Adds {@code tokens} rows of activations ({@code tokens x channels()} floats, row-major). The
     * whole batch is checked first, so a rejected batch leaves the statistics unchanged.
     */
    public void observe(float[] x, int tokens) {
        int k = channelSketches.length;
        if (tokens < 0 || x.length != (long) tokens * k) {
            throw new ShapeMismatchException("layer '" + layer + "': activations must hold " + tokens + " tokens x " + k
                    + " channels = " + ((long) tokens * k) + " floats, got " + x.length);
        }
        for (int i = 0; i < x.length; i++) {
            if (!Float.isFinite(x[i])) {
                throw new NonFiniteValueException("layer '" + layer + "': calibration activation " + x[i] + " at token "
                        + (i / k) + ", channel " + (i % k) + " is not finite");
            }
        }
        if (tokens() + tokens > Integer.MAX_VALUE) {
            throw new IllegalStateException("layer '" + layer + "': more than " + Integer.MAX_VALUE + " calibration tokens");
        }
        for (int t = 0; t < tokens; t++) {
            int base = t * k;
            for (int j = 0; j < k; j++) {
                float a = Math.abs(x[base + j]);
                channelSketches[j].add(a);
                tensorSketch.add(a);
            }
            sample.offer(x, base);
        }
    }

    /** Adds the statistics of another token stream for the same layer input. */
    public void merge(CalibrationStats other) {
        if (other.channels() != channels()) {
            throw new ShapeMismatchException("cannot merge stats of '" + other.layer + "' (" + other.channels()
                    + " channels) into '" + layer + "' (" + channels() + " channels)");
        }
        if (!other.options.equals(options)) {
            throw new IllegalArgumentException("cannot merge stats with different options: " + other.options + " vs " + options);
        }
        tensorSketch.merge(other.tensorSketch);
        for (int j = 0; j < channelSketches.length; j++) {
            channelSketches[j].merge(other.channelSketches[j]);
        }
        sample.merge(other.sample);
    }

    public String layer() {
        return layer;
    }

    public Options options() {
        return options;
    }

    public int channels() {
        return channelSketches.length;
    }

    /** Calibration tokens observed (merged ones included). */
    public long tokens() {
        return tensorSketch.total / channelSketches.length;
    }

    /** Exact {@code max |x|} over all observed activations. */
    public float tensorAbsMax() {
        return tensorSketch.max;
    }

    /** Exact {@code m_j = max_t |x[t][j]|} per channel (a copy). */
    public float[] channelAbsMax() {
        float[] m = new float[channelSketches.length];
        for (int j = 0; j < m.length; j++) {
            m[j] = channelSketches[j].max;
        }
        return m;
    }

    /** Nearest-rank q-quantile of all |x|, within relative {@code 1/(2 * tensorBinsPerOctave)}. */
    public double tensorQuantile(double q) {
        requireTokens();
        return tensorSketch.quantile(q);
    }

    /** Nearest-rank q-quantile of {@code |x[:,j]|}, within relative {@code 1/(2 * channelBinsPerOctave)}. */
    public double channelQuantile(int channel, double q) {
        requireTokens();
        return channelSketches[channel].quantile(q);
    }

    /** Sampled token rows kept for threshold search. */
    public int sampleSize() {
        return sample.size;
    }

    /** The sampled rows, {@code sampleSize() x channels()} floats (a copy). */
    public float[] sample() {
        float[] out = new float[sample.size * channels()];
        System.arraycopy(sample.rows, 0, out, 0, out.length);
        return out;
    }

    /** Throws a clear exception when no token was observed. */
    void requireTokens() {
        if (tensorSketch.total == 0) {
            throw new IllegalArgumentException("calibration for layer '" + layer
                    + "' is empty: no tokens were observed, so there is nothing to derive thresholds or scales from");
        }
    }
}
