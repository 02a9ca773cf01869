package lowbit.pipeline;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import lowbit.Context;
import lowbit.dgq.DgqConfig;
import lowbit.dgq.DgqLayerReport;
import lowbit.dgq.DgqLinear;
import lowbit.dgq.PercentileSmoothing;
import lowbit.model.FloatLinear;
import lowbit.model.LinearOp;
import lowbit.model.DecoderModel;
import lowbit.quant.BitWidthPolicy;
import lowbit.quant.CalibrationStats;
import lowbit.quant.FlattenPlan;
import lowbit.quant.FlattenQuantizer;
import lowbit.quant.LayerEvaluation;
import lowbit.quant.Precision;
import lowbit.quant.QuantConfig;
import lowbit.quant.QuantizationReport;
import lowbit.quant.QuantizedLinear;
import lowbit.quant.Smoothing;

/**
 * Quantizes every block linear layer of a {@link DecoderModel} in place by a {@link QuantMethod},
 * from one {@link ModelCalibration}; the LM head stays FP32.
 *
 * <p><b>FlattenQuant methods.</b> Per block: (1) the layers that read one normalization (q/k/v after
 * {@code attn_norm}, gate/up after {@code ffn_norm}) share one smoothing vector {@code s}, computed
 * from all their weights ({@link Smoothing#factors}) for each alpha in {none} ∪ the config's alphas;
 * each consumer is then searched by {@link FlattenQuantizer} (thresholds and clipping, no further
 * smoothing) on the smoothed statistics ({@code m / s}, sample {@code x / s}), and the alpha with
 * the smallest FLOP-weighted error sum (INT8 errors, plus INT4 errors under the mixed policy) wins;
 * its {@code s} is folded into the norm weight and the consumers' weights in FP64 ({@link
 * Smoothing#foldIntoNorm}). (2) attn_output and ffn_down have no foldable producer here, so
 * {@link FlattenQuantizer} searches their alpha per layer and keeps {@code s} as the plan's explicit
 * scale. Then the {@link BitWidthPolicy} (all INT8, or the paper's 48.29% INT4 share) picks each
 * layer's width and the chosen settings are built.
 *
 * <p><b>Baselines</b> ({@code w4a8-rtn}, {@code w8a8-token}, {@code w8a8-static}, {@code w4a4-rtn}; {@code
 * smoothquant-w4a4} after its α = 0.5 smoothing) use the identity plan, round-to-nearest weights without clipping and no
 * smoothing; their report's error is measured on the calibration sample against FP32.
 *
 * <p>Layers run on {@code context} (null: the Java reference kernels).
 */
public final class ModelQuantizer {
    private final QuantConfig config;
    private final Context context;
    private final PrintStream log;
    private final int dgqPhase1;
    private final int dgqPhase2;
    private final int dgqTokens;

    /** {@code config} governs the FlattenQuant search (its activation scale must be STATIC); log may be null. */
    public ModelQuantizer(QuantConfig config, Context context, PrintStream log) {
        this.config = java.util.Objects.requireNonNull(config, "config");
        this.context = context;
        this.log = log;
        this.dgqPhase1 = 0;
        this.dgqPhase2 = 0;
        this.dgqTokens = -1;
    }

    private ModelQuantizer(QuantConfig config, Context context, PrintStream log, int dgqPhase1, int dgqPhase2, int dgqTokens) {
        this.config = config;
        this.context = context;
        this.log = log;
        this.dgqPhase1 = dgqPhase1;
        this.dgqPhase2 = dgqPhase2;
        this.dgqTokens = dgqTokens;
    }

    /**
     * This quantizer with other DGQ grids ({@code phase1} clip ratios, {@code phase2} channel-scale
     * ratios instead of the method's 20 + 80), for quick looks, tests and small machines; G, format,
     * activation mode, smoothing and search tokens stay the method's.
     */
    public ModelQuantizer withDgqGrids(int phase1, int phase2) {
        return withDgqSearch(phase1, phase2, dgqTokens);
    }

    /** {@link #withDgqGrids} and at most {@code tokens} search tokens per layer ({@code -1}: the method's 128). */
    public ModelQuantizer withDgqSearch(int phase1, int phase2, int tokens) {
        if (phase1 < 1 || phase2 < 1) throw new IllegalArgumentException("DGQ grids need >= 1 candidate, got " + phase1 + " and " + phase2);
        if (tokens < -1) throw new IllegalArgumentException("DGQ search tokens must be >= 0 (or -1: default), got " + tokens);
        return new ModelQuantizer(config, context, log, phase1, phase2, tokens);
    }

    /** A config sized for a 2-core machine: 96 sampled tokens are used, 8 thresholds, alphas 0.5 and 0.75. */
    public static QuantConfig defaultConfig() {
        return QuantConfig.defaults().withThresholdCandidates(8);
    }

    public QuantizedModel quantize(DecoderModel model, ModelCalibration calibration, QuantMethod method) {
        if (method == QuantMethod.FP) {
            throw new IllegalArgumentException("FP is the unquantized model; nothing to quantize");
        }
        if (method == QuantMethod.ABQ_AUTO) {
            throw new IllegalArgumentException(method.id() + " runs ABQ bit-plane layers at per-layer widths: use AbqQuantizer.quantizeAuto");
        }
        if (method.isAbq()) {
            throw new IllegalArgumentException(method.id() + " calibrates block by block on the workspace's GGUF: use AbqQuantizer");
        }
        if (method.isFlatQuant()) {
            throw new IllegalArgumentException(method.id() + " calibrates block by block on the workspace's GGUF: use FlatQuantQuantizer "
                    + "(its layers and KV-cache transforms cannot be written to a quantized model file yet)");
        }
        long start = System.nanoTime();
        QuantizedModel result = method.searches() ? flattenQuant(model, calibration, method)
                : method.isDgq() ? dgq(model, calibration, method) : baseline(model, calibration, method);
        if (log != null) log.printf("quantized %s in %.1f s%n", method.id(), (System.nanoTime() - start) / 1e9);
        return result;
    }

    // ---- FlattenQuant ------------------------------------------------------------------------------

    private QuantizedModel flattenQuant(DecoderModel model, ModelCalibration calibration, QuantMethod method) {
        if (config.activationScale() != QuantConfig.ActivationScale.STATIC) {
            throw new IllegalArgumentException("FlattenQuant uses static per-tensor activation scales; config has "
                    + config.activationScale());
        }
        if (!model.normsFeedLinears()) {
            throw new IllegalArgumentException("FlattenQuant folds smoothing into the normalizations, which needs pre-norm blocks; this "
                    + model.architecture() + " model normalizes after the residual add (use a baseline method)");
        }
        boolean mixed = method == QuantMethod.FLATTEN_MIXED;
        FlattenQuantizer perLayer = new FlattenQuantizer(config, context);
        FlattenQuantizer flattenOnly = new FlattenQuantizer(config.withSmoothingAlphas(), context);
        List<LayerEvaluation> evaluations = new ArrayList<>();
        Map<String, float[]> norms = new LinkedHashMap<>();
        Map<String, Double> alphas = new LinkedHashMap<>();
        for (int b = 0; b < model.shape().blockCount(); b++) {
            String p = "blk." + b + ".";
            evaluations.addAll(foldedGroup(model, calibration, p + "attn_norm",
                    List.of(p + "attn_q", p + "attn_k", p + "attn_v"), flattenOnly, mixed, norms, alphas));
            evaluations.addAll(foldedGroup(model, calibration, p + "ffn_norm",
                    present(model, p + "ffn_gate", p + "ffn_up"), flattenOnly, mixed, norms, alphas));
            for (String name : List.of(p + "attn_output", p + "ffn_down")) {
                FloatLinear fp = floatLayer(model, name);
                evaluations.add(perLayer.evaluate(name, fp.weight(), fp.bias(), fp.outFeatures(), calibration.statsFor(name)));
            }
            if (log != null) log.printf("searched block %d / %d%n", b + 1, model.shape().blockCount());
        }
        BitWidthPolicy policy = mixed ? BitWidthPolicy.flattenQuantPaper() : BitWidthPolicy.int4Share(0, Double.POSITIVE_INFINITY);
        QuantizationReport report = policy.decide(evaluations);
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        for (LayerEvaluation e : evaluations) {
            layers.put(e.name(), onContext(e.build(report.precisionOf(e.name()))));
        }
        String description = method.description() + "; " + config;
        List<QuantizationReport.Row> rows = new ArrayList<>();
        for (QuantizationReport.Row r : report.rows()) rows.add(r.withMethod("FlattenQuant", 0));
        return QuantizedModel.install(model, method, description, QuantizationReport.of(description, rows), layers,
                norms, alphas, calibration.tokens());
    }

    /** Chooses and folds one shared smoothing vector for the consumers of a norm; returns their evaluations. */
    private List<LayerEvaluation> foldedGroup(DecoderModel model, ModelCalibration calibration, String norm, List<String> consumers,
                                              FlattenQuantizer quantizer, boolean mixed, Map<String, float[]> norms,
                                              Map<String, Double> alphas) {
        CalibrationStats stats = calibration.statsFor(consumers.get(0));
        float[] m = stats.channelAbsMax();
        float[] sample = stats.sample();
        int tokens = stats.sampleSize();
        int k = m.length;
        List<FloatLinear> fp = new ArrayList<>();
        List<float[]> weights = new ArrayList<>();
        for (String c : consumers) {
            FloatLinear f = floatLayer(model, c);
            fp.add(f);
            weights.add(f.weight());
        }
        List<Double> candidates = new ArrayList<>();
        candidates.add(Double.NaN);
        for (double a : config.smoothingAlphas()) candidates.add(a);
        double bestScore = Double.POSITIVE_INFINITY;
        double bestAlpha = Double.NaN;
        double[] bestS = null;
        List<LayerEvaluation> best = null;
        for (double alpha : candidates) {
            double[] s = Double.isNaN(alpha) ? null : Smoothing.factors(m, weights, alpha);
            float[] ms = new float[k];
            float[] xs = new float[sample.length];
            for (int j = 0; j < k; j++) ms[j] = s == null ? m[j] : (float) (m[j] / s[j]);
            for (int i = 0; i < sample.length; i++) xs[i] = s == null ? sample[i] : (float) (sample[i] / s[i % k]);
            List<double[]> folded = s == null ? null : Smoothing.foldIntoNorm(new double[k], null, toDouble(weights), s).consumerWeights();
            LayerEvaluation[] evals = new LayerEvaluation[consumers.size()];
            IntStream.range(0, consumers.size()).parallel().forEach(i -> {
                FloatLinear f = fp.get(i);
                float[] w = folded == null ? f.weight() : toFloat(folded.get(i));
                evals[i] = quantizer.evaluate(consumers.get(i), w, f.bias(), f.outFeatures(), ms, xs, tokens);
            });
            double score = 0;
            for (LayerEvaluation e : evals) {
                score += e.flopsPerToken(Precision.INT8) * e.setting(Precision.INT8).relativeError();
                if (mixed) score += e.flopsPerToken(Precision.INT4) * e.setting(Precision.INT4).relativeError();
            }
            if (score < bestScore) {
                bestScore = score;
                bestAlpha = alpha;
                bestS = s;
                best = List.of(evals);
            }
        }
        alphas.put(norm, bestAlpha);
        if (bestS != null) {
            norms.put(norm, foldIntoNorm(model, norm, consumers, bestS));
        }
        return best;
    }

    /**
     * Folds the smoothing vector {@code s} into norm {@code norm} ({@code g / s}) and the FP32
     * consumers that read it ({@code W[:,j] * s_j}), in FP64 rounded once to float32, replacing
     * them in {@code model}; the model computes the same function up to that rounding. Returns the
     * new norm weight.
     */
    static float[] foldIntoNorm(DecoderModel model, String norm, List<String> consumers, double[] s) {
        List<FloatLinear> fp = new ArrayList<>();
        List<float[]> weights = new ArrayList<>();
        for (String c : consumers) {
            FloatLinear f = floatLayer(model, c);
            if (!ModelCalibration.inputOf(c).equals(norm)) {
                throw new IllegalArgumentException(c + " does not read " + norm);
            }
            fp.add(f);
            weights.add(f.weight());
        }
        double[] g = toDouble(List.of(model.normWeight(norm))).get(0);
        float[] bias = model.normBias(norm);
        Smoothing.Folded f = Smoothing.foldIntoNorm(g, bias == null ? null : toDouble(List.of(bias)).get(0), toDouble(weights), s);
        float[] gf = toFloat(f.producerWeight());
        model.setNormWeight(norm, gf);
        if (bias != null) model.setNormBias(norm, toFloat(f.producerBias()));
        for (int i = 0; i < consumers.size(); i++) {
            FloatLinear old = fp.get(i);
            model.replaceLinear(consumers.get(i), new FloatLinear(toFloat(f.consumerWeights().get(i)), old.bias(),
                    old.outFeatures(), old.inFeatures()));
        }
        return gf;
    }

    // ---- DGQ -----------------------------------------------------------------------------------------

    /**
     * DGQ A8W4 on every block linear layer ({@link DgqLinear} on the native context). The two-phase
     * grid search measures output error on the calibration sample of each layer's input ({@link
     * CalibrationStats#sample}: at most {@link CalibrationStats.Options}' sample tokens per input,
     * of which {@link DgqConfig#searchTokens} are used), so memory does not grow with calibration
     * tokens. With smoothing (the authors' variant), the factors depend on the activation only
     * ({@link PercentileSmoothing}), so the layers that read one normalization share them: on
     * pre-norm models they are folded into the norm weight ({@code g / s}) and those layers' weights
     * ({@code W·diag(s)}), as FlattenQuant does; attn_output and ffn_down (and every layer of a
     * post-norm model) keep them explicit in the layer (input times {@code 1/s}). Where G does not
     * divide K (SmolLM2's K = 576 with G = 128) the last group of each row is partial (64 columns),
     * see {@link DgqLinear#create}.
     */
    private QuantizedModel dgq(DecoderModel model, ModelCalibration calibration, QuantMethod method) {
        if (context == null) {
            throw new IllegalArgumentException("DGQ layers run on a native context (lowbit_gemm_dgq); got none");
        }
        DgqConfig cfg = dgqConfig(method);
        boolean smooth = !Double.isNaN(cfg.smoothingPercentile());
        List<String> names = new ArrayList<>();
        for (String n : model.linearNames()) if (n.startsWith("blk.")) names.add(n);
        for (String n : names) floatLayer(model, n);
        Map<String, float[]> factors = new LinkedHashMap<>();
        java.util.Set<String> folded = new java.util.HashSet<>();
        Map<String, float[]> norms = new LinkedHashMap<>();
        if (smooth) {
            for (String n : names) {
                String input = ModelCalibration.inputOf(n);
                if (factors.containsKey(n)) continue;
                float[] s = PercentileSmoothing.factors(calibration.statsFor(n), cfg.smoothingPercentile(), cfg.tokenQuantile());
                if (!input.equals(n) && model.normsFeedLinears()) {
                    List<String> consumers = new ArrayList<>();
                    for (String c : names) if (ModelCalibration.inputOf(c).equals(input)) consumers.add(c);
                    double[] sd = new double[s.length];
                    for (int j = 0; j < s.length; j++) sd[j] = s[j];
                    norms.put(input, foldIntoNorm(model, input, consumers, sd));
                    for (String c : consumers) {
                        factors.put(c, s);
                        folded.add(c);
                    }
                } else {
                    factors.put(n, s);
                }
            }
        }
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        List<QuantizationReport.Row> rows = new ArrayList<>();
        try {
            for (int i = 0; i < names.size(); i++) {
                String name = names.get(i);
                FloatLinear fp = floatLayer(model, name);
                CalibrationStats stats = calibration.statsFor(name);
                float[] s = factors.get(name);
                boolean isFolded = folded.contains(name);
                DgqLinear q = DgqLinear.create(context, fp.weight(), fp.bias(), fp.outFeatures(), fp.inFeatures(), stats, s, isFolded,
                        cfg);
                layers.put(name, q);
                // error against the FP layer as the model holds it, on the input as that layer reads it
                int t = stats.sampleSize();
                double err = Double.NaN;
                if (t > 0) {
                    float[] x = stats.sample();
                    if (isFolded) {
                        for (int j = 0; j < x.length; j++) x[j] /= s[j % s.length];
                    }
                    err = DgqLayerReport.relativeError(fp, fp.bias(), q, x, t);
                }
                rows.add(new QuantizationReport.Row(name, Precision.INT8, fp.inFeatures(), fp.inFeatures(), fp.outFeatures(), Double.NaN,
                        Double.NaN, err, 2L * fp.outFeatures() * fp.inFeatures(), "DGQ", cfg.group()));
                if (log != null && (i + 1) % 7 == 0) log.printf("DGQ: %d / %d layers%n", i + 1, names.size());
            }
        } catch (RuntimeException e) {
            for (LinearOp op : layers.values()) op.close();
            throw e;
        }
        String description = method.description() + "; " + describe(cfg);
        return QuantizedModel.install(model, method, description, QuantizationReport.of(description, rows), layers, norms, Map.of(),
                calibration.tokens());
    }

    private static String describe(DgqConfig c) {
        return String.format(java.util.Locale.ROOT, "DGQ G=%d %s, %s activations, smoothing %s, grids %d + %d, %d search tokens",
                c.group(), c.format(), c.activations(), Double.isNaN(c.smoothingPercentile()) ? "off"
                        : String.format(java.util.Locale.ROOT, "p=%.3f (channel quantile %.3f)", c.smoothingPercentile(), c.tokenQuantile()),
                c.phase1Candidates(), c.phase2Candidates(), c.searchTokens());
    }

    /** The DGQ settings {@link #quantize} uses for {@code method} (its own, with this quantizer's grids). */
    public DgqConfig dgqConfig(QuantMethod method) {
        DgqConfig cfg = method.dgqConfig();
        return dgqPhase1 > 0 ? cfg.withSearch(dgqPhase1, dgqPhase2, dgqTokens >= 0 ? dgqTokens : cfg.searchTokens()) : cfg;
    }

    // ---- baselines ---------------------------------------------------------------------------------

    private QuantizedModel baseline(DecoderModel model, ModelCalibration calibration, QuantMethod method) {
        boolean w4a4 = method == QuantMethod.W4A4_RTN || method == QuantMethod.SMOOTHQUANT_W4A4;
        int weightBits = method == QuantMethod.W4A8_RTN || w4a4 ? 4 : 8;
        int activationBits = w4a4 ? 4 : 8;
        Map<String, double[]> inputScales = method == QuantMethod.SMOOTHQUANT_W4A4 ? smoothQuant(model, calibration) : Map.of();
        QuantConfig.ActivationScale mode = method == QuantMethod.W8A8_STATIC ? QuantConfig.ActivationScale.STATIC
                : QuantConfig.ActivationScale.DYNAMIC_PER_TOKEN;
        List<String> names = new ArrayList<>();
        for (String n : model.linearNames()) if (n.startsWith("blk.")) names.add(n);
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        QuantizationReport.Row[] rows = new QuantizationReport.Row[names.size()];
        IntStream.range(0, names.size()).parallel().forEach(i -> {
            String name = names.get(i);
            FloatLinear fp = floatLayer(model, name);
            CalibrationStats stats = calibration.statsFor(name);
            int k = fp.inFeatures();
            double[] scale = inputScales.get(name);
            FlattenPlan plan = scale == null ? FlattenPlan.identity(k) : FlattenPlan.identity(k).withInputScale(scale);
            QuantizedLinear q = QuantizedLinear.create(fp.weight(), fp.bias(), fp.outFeatures(), k, plan,
                    weightBits, activationBits, true, null, mode, stats.tensorAbsMax());
            LinearOp run = onContext(q);
            String input = ModelCalibration.inputOf(name);
            double err = sampleError(fp, run, stats, input.endsWith("_norm") ? inputScales.get(input) : null);
            synchronized (layers) {
                layers.put(name, run);
            }
            rows[i] = new QuantizationReport.Row(name, activationBits == 4 ? Precision.INT4 : Precision.INT8, k, k, fp.outFeatures(), Double.NaN,
                    Double.NaN, err, 2L * fp.outFeatures() * k, method == QuantMethod.SMOOTHQUANT_W4A4 ? "SmoothQuant" : "RTN", 0);
        });
        Map<String, LinearOp> ordered = new LinkedHashMap<>();
        for (String n : names) ordered.put(n, layers.get(n));
        Map<String, float[]> foldedNorms = new LinkedHashMap<>();
        for (String n : inputScales.keySet()) if (n.endsWith("_norm")) foldedNorms.put(n, model.normWeight(n));
        return QuantizedModel.install(model, method, method.description(), QuantizationReport.of(method.description(), List.of(rows)),
                ordered, foldedNorms, Map.of(), calibration.tokens());
    }

    /** SmoothQuant's migration strength. */
    static final double SMOOTHQUANT_ALPHA = 0.5;

    /**
     * SmoothQuant (α = 0.5) on every block: for each input, {@code s_j = max|x_j|^α / max_n |W_nj|^(1−α)}
     * over all layers reading it ({@link Smoothing#factors}, from the calibration's channel maxima).
     * The shared inputs of q/k/v and gate/up get {@code s} folded into their norm and their weights
     * (the model is changed in place and the result is keyed by the norm's name); attn_output and
     * ffn_down keep {@code s} as the layer's explicit input scale (keyed by the layer's name).
     */
    private Map<String, double[]> smoothQuant(DecoderModel model, ModelCalibration calibration) {
        if (!model.normsFeedLinears()) {
            throw new IllegalArgumentException("SmoothQuant folds smoothing into the normalizations, which needs pre-norm blocks; this "
                    + model.architecture() + " model normalizes after the residual add");
        }
        Map<String, double[]> out = new LinkedHashMap<>();
        for (int b = 0; b < model.shape().blockCount(); b++) {
            String p = "blk." + b + ".";
            for (List<String> readers : List.of(List.of(p + "attn_q", p + "attn_k", p + "attn_v"), present(model, p + "ffn_gate", p + "ffn_up"),
                    List.of(p + "attn_output"), List.of(p + "ffn_down"))) {
                List<float[]> weights = new ArrayList<>();
                for (String r : readers) weights.add(floatLayer(model, r).weight());
                String input = ModelCalibration.inputOf(readers.get(0));
                double[] s = Smoothing.factors(calibration.statsFor(readers.get(0)).channelAbsMax(), weights, SMOOTHQUANT_ALPHA);
                if (input.endsWith("_norm")) foldIntoNorm(model, input, readers, s);
                out.put(input, s);
            }
        }
        return out;
    }

    /** Relative output MSE of {@code q} against the FP32 layer on the calibration sample (bias excluded). */
    static double sampleError(FloatLinear fp, LinearOp q, CalibrationStats stats) {
        return sampleError(fp, q, stats, null);
    }

    /** As above; {@code foldedScale} non-null: the sample was taken before that smoothing was folded into its norm (divide it out). */
    private static double sampleError(FloatLinear fp, LinearOp q, CalibrationStats stats, double[] foldedScale) {
        int t = stats.sampleSize();
        if (t == 0) return Double.NaN;
        float[] x = stats.sample();
        if (foldedScale != null) {
            for (int i = 0; i < x.length; i++) x[i] = (float) (x[i] / foldedScale[i % foldedScale.length]);
        }
        int n = fp.outFeatures();
        float[] ref = new float[t * n];
        float[] got = new float[t * n];
        fp.forward(x, t, ref);
        q.forward(x, t, got);
        double num = 0, den = 0;
        float[] bias = fp.bias();
        for (int i = 0; i < ref.length; i++) {
            double b = bias == null ? 0 : bias[i % n];
            double d = got[i] - ref[i];
            num += d * d;
            den += (ref[i] - b) * (ref[i] - b);
        }
        return den == 0 ? (num == 0 ? 0 : Double.POSITIVE_INFINITY) : num / den;
    }

    // ---- helpers -----------------------------------------------------------------------------------

    private LinearOp onContext(LinearOp op) {
        if (context != null && op instanceof QuantizedLinear q) {
            return q.on(context);
        }
        return op;
    }

    private static FloatLinear floatLayer(DecoderModel model, String name) {
        LinearOp op = model.linear(name);
        if (!(op instanceof FloatLinear f)) {
            throw new IllegalStateException(name + " is already replaced (" + op.getClass().getSimpleName()
                    + "); quantize a freshly loaded model");
        }
        return f;
    }

    /** The layers among {@code names} that the model has (OPT has no ffn_gate). */
    private static List<String> present(DecoderModel model, String... names) {
        List<String> out = new ArrayList<>();
        for (String n : names) if (model.linearNames().contains(n)) out.add(n);
        return out;
    }

    private static List<double[]> toDouble(List<float[]> in) {
        List<double[]> out = new ArrayList<>();
        for (float[] a : in) {
            double[] d = new double[a.length];
            for (int i = 0; i < a.length; i++) d[i] = a[i];
            out.add(d);
        }
        return out;
    }

    private static float[] toFloat(double[] a) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) out[i] = (float) a[i];
        return out;
    }
}
