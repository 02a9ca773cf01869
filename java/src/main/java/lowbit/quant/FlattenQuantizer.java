package lowbit.quant;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import lowbit.Context;

/**
 * Per-layer search of FlattenQuantize settings: for INT4 and INT8, the smoothing alpha and flatten
 * threshold that minimize the layer's output error on the calibration sample, within the expansion
 * budget.
 *
 * <p>For each alpha in {none} ∪ {@link QuantConfig#smoothingAlphas()}: smoothing factors {@code s}
 * (see {@link Smoothing}), smoothed channel maxima {@code m'_j = m_j / s_j}, weight clip ratios
 * (chosen once: duplicating weight columns changes neither a row's max nor, in exact arithmetic, a
 * row's output error). Thresholds: {@code K'(T) = sum_j max(1, ceil(m'_j / T))} falls as T grows, so
 * bisection finds the smallest {@code T_min} with {@code K'(T_min) <= floor(budget * K)}; the
 * candidates are {@link QuantConfig#thresholdCandidates()} thresholds spaced geometrically from
 * {@code T_min} to {@code max m'} (no flattening). A smaller T shrinks the activation step but adds
 * copies, each adding its own rounding noise, so the best T is in between and is found by
 * measurement: every candidate is quantized exactly as it will run ({@link QuantizedLinear}) and its
 * relative output MSE {@code ||Y_q - Y||² / ||Y||²} against the FP64 product is measured on the
 * sample. The smallest error wins; ties go to the smaller K'.
 */
public final class FlattenQuantizer {
    private final QuantConfig config;
    private final Context context;

    /** Measures candidates with the Java reference kernel. */
    public FlattenQuantizer(QuantConfig config) {
        this(config, null);
    }

    /**
     * Measures candidates on {@code context}'s native kernels (null: Java). The integer results are
     * identical, so the search decides the same; only its speed differs.
     */
    public FlattenQuantizer(QuantConfig config, Context context) {
        this.config = java.util.Objects.requireNonNull(config, "config");
        this.context = context;
    }

    public QuantConfig config() {
        return config;
    }

    /**
     * Evaluates one layer {@code y = x Wᵀ + b} ({@code weights}: outFeatures x K row-major, K =
     * {@code stats.channels()}; {@code bias} may be null) on its calibration statistics.
     */
    public LayerEvaluation evaluate(String name, float[] weights, float[] bias, int outFeatures, CalibrationStats stats) {
        int k = stats.channels();
        if (outFeatures < 1 || weights.length != (long) outFeatures * k) {
            throw new ShapeMismatchException("layer '" + name + "': weights must be " + outFeatures + " x " + k
                    + " (K from its calibration stats) = " + ((long) outFeatures * k) + " floats, got " + weights.length);
        }
        if (bias != null && bias.length != outFeatures) {
            throw new ShapeMismatchException("layer '" + name + "': bias must have " + outFeatures + " values, got " + bias.length);
        }
        stats.requireTokens();
        return evaluate(name, weights, bias, outFeatures, stats.channelAbsMax(), stats.sample(), stats.sampleSize());
    }

    /**
     * As {@link #evaluate(String, float[], float[], int, CalibrationStats)} from the parts of the
     * statistics it uses: per-channel maxima {@code m[K]} and sampled rows ({@code tokens x K}), e.g.
     * after a smoothing vector was folded into the producer ({@code m / s}, {@code x / s}).
     */
    public LayerEvaluation evaluate(String name, float[] weights, float[] bias, int outFeatures, float[] m, float[] x,
                                    int tokens) {
        int k = m.length;
        if (outFeatures < 1 || weights.length != (long) outFeatures * k) {
            throw new ShapeMismatchException("layer '" + name + "': weights must be " + outFeatures + " x " + k
                    + " = " + ((long) outFeatures * k) + " floats, got " + weights.length);
        }
        if (bias != null && bias.length != outFeatures) {
            throw new ShapeMismatchException("layer '" + name + "': bias must have " + outFeatures + " values, got " + bias.length);
        }
        if (tokens == 0) {
            throw new IllegalArgumentException("layer '" + name + "': calibration kept no sample tokens"
                    + " (Options.sampleTokens = 0), but threshold search measures error on the sample");
        }
        if (x.length != (long) tokens * k) {
            throw new ShapeMismatchException("layer '" + name + "': sample must be " + tokens + " x " + k + " floats, got " + x.length);
        }
        SymmetricQuant.absMax(weights, 0, weights.length, "layer '" + name + "' weights");
        SymmetricQuant.absMax(x, 0, x.length, "layer '" + name + "' calibration sample");
        double[] reference = referenceProduct(x, tokens, weights, outFeatures, k);
        Map<Precision, PrecisionSetting> settings = new EnumMap<>(Precision.class);
        for (Precision p : new Precision[] {Precision.INT4, Precision.INT8}) {
            settings.put(p, search(p, weights, outFeatures, k, m, x, tokens, reference));
        }
        settings.put(Precision.FP16, new PrecisionSetting(Precision.FP16, Double.NaN, Double.NaN, FlattenPlan.identity(k),
                0.0, new float[] {1f}));
        return new LayerEvaluation(name, k, outFeatures, settings, weights.clone(), bias == null ? null : bias.clone(),
                m, config);
    }

    private PrecisionSetting search(Precision p, float[] w, int n, int k, float[] m, float[] x, int tokens,
                                    double[] reference) {
        boolean perChannel = config.weightGranularity() == QuantConfig.WeightGranularity.PER_OUTPUT_CHANNEL;
        QuantConfig.ActivationScale mode = config.activationScale();
        List<Double> alphas = new ArrayList<>();
        alphas.add(Double.NaN);
        for (double a : config.smoothingAlphas()) {
            alphas.add(a);
        }
        PrecisionSetting best = null;
        float[] yq = new float[tokens * n];
        for (double alpha : alphas) {
            double[] s = Double.isNaN(alpha) ? null : Smoothing.factors(m, List.of(w), alpha);
            float[] smoothedMax = new float[k];
            float[] smoothedW = new float[w.length];
            float[] smoothedX = new float[x.length];
            for (int j = 0; j < k; j++) {
                smoothedMax[j] = s == null ? m[j] : (float) (m[j] / s[j]);
            }
            for (int i = 0; i < w.length; i++) {
                smoothedW[i] = s == null ? w[i] : (float) (w[i] * s[i % k]);
            }
            for (int i = 0; i < x.length; i++) {
                smoothedX[i] = s == null ? x[i] : (float) (x[i] / s[i % k]);
            }
            float[] clip = WeightQuantizer.chooseClip(smoothedW, n, k, p.bits(), perChannel, config.clipSearch(),
                    config.clipRatios(), smoothedX, tokens);
            int[] lastCopies = null;
            for (double t : thresholdCandidates(smoothedMax, config.expansionBudget(), config.thresholdCandidates())) {
                FlattenPlan plan;
                int[] copies;
                if (t > 0) {
                    copies = FlattenPlan.copiesFor(smoothedMax, t);
                    plan = FlattenPlan.ofCopies(copies);
                } else {
                    copies = new int[k];
                    Arrays.fill(copies, 1);
                    plan = FlattenPlan.identity(k);
                }
                if (Arrays.equals(copies, lastCopies)) {
                    continue;
                }
                lastCopies = copies;
                if (s != null) {
                    plan = plan.withInputScale(s);
                }
                plan = plan.paddedTo(config.padMultiple());
                QuantizedLinear layer = QuantizedLinear.create(w, null, n, k, plan, p.bits(), p.bits(), perChannel, clip,
                        mode, plan.flattenedAbsMax(m));
                try (QuantizedLinear run = context == null ? layer : layer.on(context)) {
                    run.forward(x, tokens, yq);
                }
                double err = relativeError(yq, reference);
                if (best == null || err < best.relativeError()
                        || (err == best.relativeError() && plan.expandedFeatures() < best.expandedFeatures())) {
                    best = new PrecisionSetting(p, alpha, t, plan, err, clip);
                }
            }
        }
        return best;
    }

    /**
     * Candidate thresholds, ascending: geometric from the smallest threshold within the budget to
     * the largest channel max. All-zero maxima give the single candidate 0 (identity plan).
     */
    static double[] thresholdCandidates(float[] channelMax, double budget, int count) {
        double maxM = 0;
        for (float v : channelMax) {
            maxM = Math.max(maxM, v);
        }
        if (maxM == 0) {
            return new double[] {0.0};
        }
        double tMin = smallestThreshold(channelMax, budget);
        if (count == 1 || tMin >= maxM) {
            return new double[] {tMin};
        }
        double[] out = new double[count];
        for (int i = 0; i < count; i++) {
            out[i] = tMin * Math.pow(maxM / tMin, (double) i / (count - 1));
        }
        out[count - 1] = maxM;
        return out;
    }

    /** Smallest T (to 1e-9 relative) with {@code K'(T) <= floor(budget * K)}; the largest channel max when budget is 1. */
    static double smallestThreshold(float[] channelMax, double budget) {
        if (!(budget >= 1)) {
            throw new IllegalArgumentException("expansion budget K'/K must be >= 1, got " + budget);
        }
        long limit = (long) Math.floor(budget * channelMax.length);
        double maxM = 0;
        for (float v : channelMax) {
            maxM = Math.max(maxM, v);
        }
        double hi = maxM;
        double lo = maxM / (limit + 1);
        if (FlattenPlan.expandedCount(channelMax, lo) <= limit) {
            return lo;
        }
        while (hi - lo > 1e-9 * hi) {
            double mid = Math.sqrt(lo * hi);
            if (FlattenPlan.expandedCount(channelMax, mid) <= limit) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        return hi;
    }

    static double[] referenceProduct(float[] x, int tokens, float[] w, int n, int k) {
        double[] y = new double[tokens * n];
        for (int t = 0; t < tokens; t++) {
            for (int o = 0; o < n; o++) {
                double acc = 0;
                for (int j = 0; j < k; j++) {
                    acc += (double) x[t * k + j] * w[o * k + j];
                }
                y[t * n + o] = acc;
            }
        }
        return y;
    }

    /** {@code ||yq - y||² / ||y||²}; 0 when both are 0, +Inf when only y is 0. */
    static double relativeError(float[] yq, double[] y) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < y.length; i++) {
            double d = yq[i] - y[i];
            num += d * d;
            den += y[i] * y[i];
        }
        if (den == 0) {
            return num == 0 ? 0 : Double.POSITIVE_INFINITY;
        }
        return num / den;
    }
}
