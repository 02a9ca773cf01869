package lowbit.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import lowbit.Context;
import lowbit.abq.AbqConfig;
import lowbit.abq.AbqFlatBlock;
import lowbit.abq.AbqFlatScheme;
import lowbit.abq.AbqFold;
import lowbit.abq.AbqLinear;
import lowbit.abq.AbqMethod;
import lowbit.abq.AbqWidth;
import lowbit.abq.AbqWidthPolicy;
import lowbit.abq.AbqWidthReport;
import lowbit.abq.GemmTimer;
import lowbit.quant.Gptq;
import lowbit.abq.LayerWidthFigures;
import lowbit.abq.WidthMeasurement;
import lowbit.abq.ClippedWeightQuantizer;
import lowbit.abq.IntCodes;
import lowbit.abq.TransformedAbqLinear;
import lowbit.calibrate.BlockMethod;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.CalibrationListener;
import lowbit.calibrate.CalibrationOptions;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.calibrate.Var;
import lowbit.flatquant.BlockTransforms;
import lowbit.flatquant.FlatQuantMethod;
import lowbit.flatquant.QuantScheme;
import lowbit.io.GgufFile;
import lowbit.model.DecoderModel;
import lowbit.model.FloatLinear;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
import lowbit.quant.CalibrationStats;
import lowbit.quant.Precision;
import lowbit.quant.QuantizationReport;

/**
 * The ABQ-LLM methods on a whole LLaMA model: block-wise calibration ({@link AbqMethod} through
 * {@link BlockwiseCalibration}, trained on the outputs of the already calibrated blocks as the
 * authors do, constant learning rates as they use no schedule), then per block the fold of the
 * learned smoothing and compensation into the FP weights and norms ({@link AbqFold}), integer
 * weight codes with the learned clipping ({@link ClippedWeightQuantizer}) and {@link AbqLinear}
 * layers on the native context. The {@code -rtn} methods skip calibration (round to nearest at the
 * same widths). The LM head stays FP32. The calibration size is a {@link CalibrationBudget} (the
 * authors use 128 × 2048 tokens, 20 epochs for W4A4 or 40 for W2A8, batch 1).
 *
 * <p>The layers run the native bit-plane GEMM rather than the calibration's fake quantization: it is
 * what a deployment runs (per-token activation quantization included, bit-exact with {@link
 * AbqLinear#simulate}), and it is much faster than simulating the integer product in Java.
 *
 * <p><b>{@code abq-WxAy-flat}</b> ({@link #quantizeFlat}) runs ABQ-LLM's bit-plane layers behind
 * FlatQuant's learned transforms instead of LET: FlatQuant's calibration at the method's widths, its
 * fold, and {@link TransformedAbqLinear} layers (online transform, learned activation clip,
 * bit-plane GEMM); {@code -gptq} rounds the weights by {@link GptqRounding} on the same grid, with
 * input statistics gathered in the round-to-nearest model.
 *
 * <p><b>{@code abq-auto}</b> ({@link #quantizeAuto}) gives each block linear layer its own width:
 * for every candidate of an {@link AbqWidthPolicy} it measures the layer's relative output error
 * after round to nearest ({@link WidthMeasurement}: the real {@link AbqLinear} on the context, on
 * the layer's {@link ModelCalibration} sample of FP activations; no calibration is learned) and
 * the bit-plane GEMM's time for the layer's (N, K) on this context ({@link GemmTimer}, e.g. {@link
 * lowbit.abq.BitPlaneGemmTimer}: medians, cached per shape), lets the policy choose, and installs
 * the chosen layers. It works on any {@link DecoderModel} with FP32 layers (LLaMA or OPT, GGUF or
 * checkpoint), as nothing is calibrated block by block.
 */
public final class AbqQuantizer {
    private final Context context;
    private final CalibrationBudget budget;
    private final Path workDir;
    private final PrintStream log;

    /**
     * {@code workDir}: where calibration checkpoints go ({@code <workDir>/<method>}, resumable); null
     * for a temporary directory deleted afterwards. {@code log} may be null.
     */
    public AbqQuantizer(Context context, CalibrationBudget budget, Path workDir, PrintStream log) {
        if (context == null) throw new IllegalArgumentException("ABQ layers run on a native context (lowbit_bitplane_gemm); got none");
        if (budget == null) throw new IllegalArgumentException("a calibration budget is required");
        this.context = context;
        this.budget = budget;
        this.workDir = workDir;
        this.log = log;
    }

    /** Calibrates (unless an {@code -rtn} method) and installs ABQ layers into {@code model}, a fresh load of {@code ws}'s model. */
    public QuantizedModel quantize(Workspace ws, DecoderModel model, QuantMethod method) throws IOException {
        if (!method.isAbq()) throw new IllegalArgumentException(method.id() + " is not an ABQ method");
        if (method == QuantMethod.ABQ_AUTO) {
            throw new IllegalArgumentException(method.id() + " measures every layer on a calibration sample under a width policy: "
                    + "use quantizeAuto(model, calibration, policy, timer)");
        }
        if (ws.isCheckpoint()) throw new IllegalArgumentException("ABQ calibration reads a llama GGUF; got a checkpoint directory");
        if (method.isAbqFlat()) return quantizeFlat(ws, model, method);
        AbqConfig cfg = method.abqConfig();
        long start = System.nanoTime();
        try (GgufFile g = GgufFile.open(ws.gguf())) {
            LlamaConfig c = LlamaConfig.fromGguf(g);
            if (c.blockCount() != model.shape().blockCount()) {
                throw new IllegalArgumentException("the model has " + model.shape().blockCount() + " blocks, its GGUF " + c.blockCount());
            }
            Map<String, double[]> params = method.abqCalibrates() ? calibrate(ws, method, cfg, c.blockCount()) : Map.of();
            RotaryEmbedding rope = RotaryEmbedding.of(c, g.hasTensor("rope_freqs.weight") ? g.readFloats("rope_freqs.weight") : null);
            Map<String, LinearOp> layers = new LinkedHashMap<>();
            Map<String, float[]> norms = new LinkedHashMap<>();
            List<QuantizationReport.Row> rows = new ArrayList<>();
            try {
                for (int b = 0; b < c.blockCount(); b++) {
                    LlamaBlock block = LlamaBlock.fromGguf(g, c, b, rope);
                    AbqFold fold = AbqFold.of(b, c.blockCount(), block, cfg, params);
                    String p = "blk." + b + ".";
                    if (cfg.let()) {
                        norms.put(p + "attn_norm", toFloat(fold.attnNorm()));
                        norms.put(p + "ffn_norm", toFloat(fold.ffnNorm()));
                    }
                    for (String l : block.linears()) {
                        Var w = block.weight(l);
                        int n = w.rows(), k = w.cols();
                        IntCodes codes = ClippedWeightQuantizer.quantize(toFloat(fold.weight(l)), n, k, cfg.weightQuantizer(), fold.clipFactors(l));
                        Var bias = block.bias(l);
                        layers.put(p + l, AbqLinear.of(context, codes, bias == null ? null : toFloat(bias.value()), cfg.activationQuantizer()));
                        rows.add(new QuantizationReport.Row(p + l, cfg.activationBits() <= 4 ? Precision.INT4 : Precision.INT8, k, k, n,
                                Double.NaN, Double.NaN, Double.NaN, 2L * n * k, "ABQ " + cfg.widths(), 0));
                    }
                }
            } catch (RuntimeException e) {
                for (LinearOp op : layers.values()) op.close();
                throw e;
            }
            String description = method.description() + "; " + cfg + (method.abqCalibrates() ? "; calibration " + budget : "");
            if (log != null) log.printf(Locale.ROOT, "quantized %s in %.1f s%n", method.id(), (System.nanoTime() - start) / 1e9);
            return QuantizedModel.install(model, method, description, QuantizationReport.of(description, rows), layers, norms, Map.of(),
                    method.abqCalibrates() ? (long) budget.samples() * budget.seqLen() : 0);
        }
    }

    // ---- ABQ on FlatQuant transforms (abq-WxAy-flat) ---------------------------------------------

    /**
     * {@code abq-WxAy-flat[-asym]}: FlatQuant's calibration ({@link FlatQuantMethod#authors}: Kronecker
     * transforms, channel scales, weight and activation clips; on the FP stream, cosine schedule, as
     * {@link FlatQuantQuantizer}) with fake quantizers at this method's widths and symmetry ({@link
     * AbqFlatScheme#calibrationScheme}), then per block the fold and the bit-plane layers ({@link
     * AbqFlatBlock}). Checkpoints go to {@code <workDir>/<method>}.
     */
    private QuantizedModel quantizeFlat(Workspace ws, DecoderModel model, QuantMethod method) throws IOException {
        AbqFlatScheme fs = method.abqFlatScheme();
        QuantScheme scheme = fs.calibrationScheme();
        long start = System.nanoTime();
        try (GgufFile g = GgufFile.open(ws.gguf())) {
            LlamaConfig c = LlamaConfig.fromGguf(g);
            if (c.blockCount() != model.shape().blockCount()) {
                throw new IllegalArgumentException("the model has " + model.shape().blockCount() + " blocks, its GGUF " + c.blockCount());
            }
            Map<String, double[]> params = calibrateFlat(ws, method, scheme, c.blockCount());
            RotaryEmbedding rope = RotaryEmbedding.of(c, g.hasTensor("rope_freqs.weight") ? g.readFloats("rope_freqs.weight") : null);
            Map<String, LinearOp> layers = new LinkedHashMap<>();
            Map<String, float[]> norms = new LinkedHashMap<>();
            List<QuantizationReport.Row> rows = new ArrayList<>();
            try {
                buildFlat(g, c, rope, params, scheme, fs, null, layers, norms);
                if (fs.gptq()) {
                    // GPTQ: the second moments of every layer input in the round-to-nearest model, then the layers again
                    for (Map.Entry<String, float[]> e : norms.entrySet()) model.setNormWeight(e.getKey(), e.getValue());
                    for (Map.Entry<String, LinearOp> e : layers.entrySet()) model.replaceLinear(e.getKey(), e.getValue());
                    Map<String, double[]> hessians = flatHessians(ws, model, layers);
                    Map<String, LinearOp> rtn = new LinkedHashMap<>(layers);
                    layers.clear();
                    try {
                        buildFlat(g, c, rope, params, scheme, fs, hessians, layers, norms);
                    } finally {
                        for (LinearOp op : rtn.values()) op.close();
                    }
                }
            } catch (RuntimeException e) {
                for (LinearOp op : layers.values()) op.close();
                throw e;
            }
            for (Map.Entry<String, LinearOp> e : layers.entrySet()) {
                int n = e.getValue().outFeatures(), k = e.getValue().inFeatures();
                rows.add(new QuantizationReport.Row(e.getKey(), fs.activationBits() <= 4 ? Precision.INT4 : Precision.INT8, k, k, n,
                        Double.NaN, Double.NaN, Double.NaN, 2L * n * k, "ABQ " + fs.widths() + " flat" + (fs.gptq() ? " GPTQ" : ""), 0));
            }
            String description = method.description() + "; " + fs + "; FlatQuant calibration " + budget;
            if (log != null) log.printf(Locale.ROOT, "quantized %s in %.1f s%n", method.id(), (System.nanoTime() - start) / 1e9);
            return QuantizedModel.install(model, method, description, QuantizationReport.of(description, rows), layers, norms, Map.of(),
                    (long) budget.samples() * budget.seqLen());
        }
    }

    /** Every block's {@link AbqFlatBlock} into {@code layers} and {@code norms} (GPTQ weights when {@code hessians}, keyed {@code blk.N.<input>}, is not null). */
    private void buildFlat(GgufFile g, LlamaConfig c, RotaryEmbedding rope, Map<String, double[]> params, QuantScheme scheme, AbqFlatScheme fs,
                           Map<String, double[]> hessians, Map<String, LinearOp> layers, Map<String, float[]> norms) throws IOException {
        for (int b = 0; b < c.blockCount(); b++) {
            LlamaBlock block = LlamaBlock.fromGguf(g, c, b, rope);
            String p = "blk." + b + ".";
            BlockTransforms t = new BlockTransforms(p, block, null, scheme, BlockTransforms.DEFAULT_ALPHA,
                    BlockwiseCalibration.blockSeed(FlatQuantQuantizer.SEED, b));
            t.load(params);
            Map<String, double[]> h = null;
            if (hessians != null) {
                h = new LinkedHashMap<>();
                for (String input : List.of("attn_q", "attn_output", "ffn_gate", "ffn_down")) h.put(input, hessians.get(p + input));
            }
            AbqFlatBlock fb = AbqFlatBlock.build(context, block, t, params, p, fs, h);
            norms.put(p + "attn_norm", fb.attnNorm());
            norms.put(p + "ffn_norm", fb.ffnNorm());
            for (Map.Entry<String, TransformedAbqLinear> e : fb.layers().entrySet()) layers.put(p + e.getKey(), e.getValue());
        }
    }

    /**
     * GPTQ's input statistics: {@code H = Σ_t x_tᵀ x_t} of every distinct layer input ({@code
     * blk.N.attn_q} for q/k/v, attn_output, ffn_gate for gate/up, ffn_down) as the layer quantizes it
     * ({@link TransformedAbqLinear#prepared}), over the calibration text ({@link CalibrationBudget}'s
     * samples × tokens, one sequence of seqLen tokens at a time), with {@code layers} installed in
     * {@code model} (each layer's input comes from the quantized layers before it).
     */
    private Map<String, double[]> flatHessians(Workspace ws, DecoderModel model, Map<String, LinearOp> layers) throws IOException {
        long start = System.nanoTime();
        Map<String, double[]> h = new java.util.concurrent.ConcurrentHashMap<>();
        lowbit.model.LinearInputHook hook = (layer, x, tokens, in) -> {
            if (!layer.startsWith("blk.")) return;
            String input = layer.substring(0, layer.lastIndexOf('.') + 1) + AbqFlatBlock.inputOf(layer.substring(layer.lastIndexOf('.') + 1));
            if (!input.equals(layer)) return; // q/k/v and gate/up share one input: take it once
            TransformedAbqLinear op = (TransformedAbqLinear) layers.get(layer);
            double[] m = h.computeIfAbsent(layer, key -> new double[in * in]);
            float[] xp = op.prepared(x, tokens);
            synchronized (m) {
                Gptq.accumulate(m, xp, tokens, in);
            }
        };
        int[] tokens = ws.calibrationTokens(budget.samples() * budget.seqLen());
        model.addInputHook(hook);
        try {
            for (int s = 0; s < budget.samples(); s++) {
                int[] seq = java.util.Arrays.copyOfRange(tokens, s * budget.seqLen(), (s + 1) * budget.seqLen());
                model.forwardHidden(model.newKvCache(seq.length), seq);
            }
        } finally {
            model.removeInputHook(hook);
        }
        for (Map.Entry<String, double[]> e : h.entrySet()) {
            int k = (int) Math.round(Math.sqrt(e.getValue().length));
            Gptq.symmetrize(e.getValue(), k);
        }
        if (log != null) {
            log.printf(Locale.ROOT, "GPTQ input statistics of %d layer inputs over %d tokens in %.1f s%n", h.size(), tokens.length,
                    (System.nanoTime() - start) / 1e9);
        }
        return h;
    }

    /** FlatQuant's block-wise calibration at {@code scheme}, as {@link FlatQuantQuantizer} runs it (same options and seed). */
    private Map<String, double[]> calibrateFlat(Workspace ws, QuantMethod method, QuantScheme scheme, int blocks) throws IOException {
        CalibrationOptions o = new CalibrationOptions(budget.samples(), 0, budget.seqLen(), budget.epochs(), budget.batchSize(), blocks,
                false, 1e-3, FlatQuantQuantizer.SEED, false);
        // GPTQ changes only the rounding after calibration: -gptq shares its calibration (and checkpoints) with the plain method
        return calibrateInto(ws, FlatQuantMethod.authors(scheme), o, method.id().replace("-gptq", ""), "lowbit-abq-flat-", method.id());
    }

    // ---- abq-auto -----------------------------------------------------------------------------------

    /**
     * {@code abq-auto}: measures every block linear layer of {@code model} (FP32, freshly loaded) at
     * each of {@code policy}'s candidates, lets {@code policy} choose and installs the chosen
     * layers. {@link QuantizedModel#details} holds the {@link AbqWidthReport} table.
     */
    public QuantizedModel quantizeAuto(DecoderModel model, ModelCalibration calibration, AbqWidthPolicy policy, GemmTimer timer) {
        long start = System.nanoTime();
        List<LayerWidthFigures> figures = measureWidths(model, calibration, policy, timer);
        QuantizedModel q = installWidths(model, policy.decide(figures), calibration.tokens(), timer);
        if (log != null) log.printf(Locale.ROOT, "quantized %s in %.1f s%n", QuantMethod.ABQ_AUTO.id(), (System.nanoTime() - start) / 1e9);
        return q;
    }

    /**
     * The figures {@link AbqWidthPolicy#decide} chooses from, per block linear layer of {@code model}
     * in order: errors on {@code calibration}'s sample of the layer's input (it must hold at least
     * one token), times from {@code timer}. The model is not changed.
     */
    public List<LayerWidthFigures> measureWidths(DecoderModel model, ModelCalibration calibration, AbqWidthPolicy policy, GemmTimer timer) {
        if (model == null || calibration == null || policy == null || timer == null) {
            throw new IllegalArgumentException("abq-auto needs a model, its calibration, a width policy and a GEMM timer");
        }
        List<String> names = blockLinears(model);
        List<double[]> errors = new ArrayList<>();
        long start = System.nanoTime();
        for (String name : names) {
            FloatLinear fp = floatLayer(model, name);
            CalibrationStats stats = calibration.statsFor(name);
            int t = stats.sampleSize();
            if (t == 0) {
                throw new IllegalArgumentException(name + ": the calibration kept no sample tokens; abq-auto measures each width's error on them "
                        + "(sample tokens must be >= 1)");
            }
            errors.add(WidthMeasurement.errors(context, name, fp.weight(), fp.outFeatures(), fp.inFeatures(), stats.sample(), t,
                    policy.candidates()));
            if (log != null && errors.size() % 14 == 0) {
                log.printf(Locale.ROOT, "abq-auto: errors of %d / %d layers (%.1f s)%n", errors.size(), names.size(), (System.nanoTime() - start) / 1e9);
            }
        }
        // the times after all errors: the clock runs on its own, each (N, K) once
        List<LayerWidthFigures> out = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            FloatLinear fp = floatLayer(model, names.get(i));
            out.add(WidthMeasurement.times(names.get(i), fp.outFeatures(), fp.inFeatures(), policy.candidates(), errors.get(i), timer,
                    policy.timingTokens()));
        }
        if (log != null) log.printf(Locale.ROOT, "abq-auto: measured %d layers in %.1f s%n", names.size(), (System.nanoTime() - start) / 1e9);
        return out;
    }

    /**
     * Replaces each layer of {@code choice} in {@code model} by an {@link AbqLinear} at its chosen
     * width (round to nearest, the FP bias kept). The report's rows carry the width as the method
     * ({@code "ABQ W4A8"}) and the measured error; {@link QuantizedModel#details} the full table.
     * {@code timer} (may be null) is named in the description as the source of the times.
     */
    public QuantizedModel installWidths(DecoderModel model, AbqWidthReport choice, long calibrationTokens, GemmTimer timer) {
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        List<QuantizationReport.Row> rows = new ArrayList<>();
        try {
            for (AbqWidthReport.Decision d : choice.decisions()) {
                FloatLinear fp = floatLayer(model, d.layer());
                int n = fp.outFeatures(), k = fp.inFeatures();
                if (n != d.figures().outFeatures() || k != d.figures().inFeatures()) {
                    throw new IllegalArgumentException(d.layer() + " is " + n + " x " + k + " but was measured as "
                            + d.figures().outFeatures() + " x " + d.figures().inFeatures());
                }
                AbqWidth w = d.width();
                layers.put(d.layer(), AbqLinear.create(context, fp.weight(), fp.bias(), n, k, w.weightQuantizer(), w.activationQuantizer()));
                rows.add(new QuantizationReport.Row(d.layer(), w.activationBits() <= 4 ? Precision.INT4 : Precision.INT8, k, k, n, Double.NaN,
                        Double.NaN, d.choice().relativeError(), 2L * n * k, "ABQ " + w, 0));
            }
        } catch (RuntimeException e) {
            for (LinearOp op : layers.values()) op.close();
            throw e;
        }
        String description = QuantMethod.ABQ_AUTO.description() + "; " + choice.policy() + (timer == null ? "" : "; timing: " + timer);
        return QuantizedModel.install(model, QuantMethod.ABQ_AUTO, description, QuantizationReport.of(description, rows), layers, Map.of(),
                Map.of(), calibrationTokens).withDetails(choice.toTable());
    }

    private static List<String> blockLinears(DecoderModel model) {
        List<String> names = new ArrayList<>();
        for (String n : model.linearNames()) if (n.startsWith("blk.")) names.add(n);
        if (names.isEmpty()) throw new IllegalArgumentException("the model has no block linear layers to quantize");
        return names;
    }

    private static FloatLinear floatLayer(DecoderModel model, String name) {
        LinearOp op = model.linear(name);
        if (!(op instanceof FloatLinear f)) {
            throw new IllegalStateException(name + " is already replaced (" + op.getClass().getSimpleName() + "); quantize a freshly loaded model");
        }
        return f;
    }

    private Map<String, double[]> calibrate(Workspace ws, QuantMethod method, AbqConfig cfg, int blocks) throws IOException {
        CalibrationOptions o = new CalibrationOptions(budget.samples(), 0, budget.seqLen(), budget.epochs(), budget.batchSize(), blocks,
                true, 1.0, 0, false);
        return calibrateInto(ws, new AbqMethod(cfg, blocks), o, method.id().replace("*", "star"), "lowbit-abq-", method.id());
    }

    /**
     * Block-wise calibration of {@code blockMethod}, checkpoints in {@code <workDir>/<dirName>} (a
     * temporary directory named {@code tempPrefix...}, deleted afterwards, without a work directory),
     * a log line per block labelled {@code label}.
     */
    private Map<String, double[]> calibrateInto(Workspace ws, BlockMethod blockMethod, CalibrationOptions o, String dirName,
                                                String tempPrefix, String label) throws IOException {
        boolean temporary = workDir == null;
        Path dir = temporary ? Files.createTempDirectory(tempPrefix) : workDir.resolve(dirName);
        try {
            return BlockwiseCalibration.run(ws, blockMethod, o, dir, CalibrationListener.blockLog(log, label)).params();
        } finally {
            if (temporary) deleteRecursively(dir);
        }
    }

    private static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
        }
    }

    private static float[] toFloat(double[] a) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) out[i] = (float) a[i];
        return out;
    }
}
