package lowbit.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import lowbit.Context;
import lowbit.calibrate.BlockReport;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.CalibrationListener;
import lowbit.calibrate.CalibrationOptions;
import lowbit.calibrate.CalibrationResult;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.calibrate.Site;
import lowbit.flatquant.BlockTransforms;
import lowbit.flatquant.FlatQuantBlock;
import lowbit.flatquant.FlatQuantKvCodec;
import lowbit.flatquant.FlatQuantLayerErrors;
import lowbit.flatquant.FlatQuantLinear;
import lowbit.flatquant.FlatQuantMethod;
import lowbit.flatquant.GptqPendingLinear;
import lowbit.flatquant.OnlineTransform;
import lowbit.flatquant.QuantScheme;
import lowbit.io.GgufFile;
import lowbit.model.DecoderModel;
import lowbit.model.KvCache;
import lowbit.model.LinearInputHook;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
import lowbit.quant.Gptq;
import lowbit.quant.Precision;
import lowbit.quant.QuantizationReport;

/**
 * The FlatQuant methods on a whole LLaMA model: block-wise calibration ({@link
 * FlatQuantMethod#authors}: α 0.3 scale init, lr 5e-3 transforms and scales, 5e-2 clipping, loss
 * MSE/MSE.detach(), cosine schedule to 1e-3; through {@link BlockwiseCalibration} on the FP stream of
 * calibration-split text, as the authors), then per block the offline fold and the inference
 * layers ({@link FlatQuantBlock}: {@link lowbit.flatquant.FlatQuantLinear} with online transforms
 * and learned clips on the native context) and, for KV4, the K transform and KV quantizer at the
 * cache ({@link FlatQuantKvCodec} through {@link KvCodecModel}; packed 4-bit codes in the cache). The LM head stays FP32. The
 * weights are round-to-nearest with the learned clip (the authors' "RTN" rows), or, for the {@code
 * -gptq} methods (the authors' {@code --gptq} rows), rounded by GPTQ ({@link lowbit.quant.Gptq}) on the
 * same per-channel scales: after the fold, one forward pass of the quantized model over {@link
 * #DEFAULT_GPTQ_TOKENS} calibration tokens (one sequence) rounds each layer in execution order from
 * its own inputs ({@link lowbit.flatquant.GptqPendingLinear}): the Hessian is that of the layer's
 * transformed float inputs {@code x·P} (before activation quantization, as QuaRot's and FlatQuant's
 * GPTQ pass with activations at 16 bits), where {@code x} comes from the quantized stream (every earlier
 * layer, earlier layers of the same block included, already runs with its GPTQ weights, quantized
 * activations and, for KV4, the quantized cache). The transform calibration is the RTN method's
 * (a checkpoint directory is shared with it).
 */
public final class FlatQuantQuantizer {
    /** The calibration seed: block b's random orthogonal starts are seeded with {@link BlockwiseCalibration#blockSeed}. */
    static final long SEED = 0;

    /** The authors' recipe ({@code train_utils.cali_flat_quant}): 128 × 2048 tokens, 15 epochs, batch 4 (480 steps per block). */
    public static CalibrationBudget authorsBudget() {
        return new CalibrationBudget(128, 2048, 15, 4);
    }

    /** {@code "authors"}, or what {@link CalibrationBudget#parse} reads ({@code "reduced"}, four integers). */
    public static CalibrationBudget parseBudget(String s) {
        if (s != null && s.trim().equalsIgnoreCase("authors")) return authorsBudget();
        return CalibrationBudget.parse(s);
    }

    private final Context context;
    private final CalibrationBudget budget;
    private final Path workDir;
    private final PrintStream log;
    private final java.util.SortedSet<Integer> wideBlocks;
    private final Gptq.Options gptq;

    /**
     * {@code workDir}: where calibration checkpoints go ({@code <workDir>/<method>}, resumable and
     * reused by a later run with the same settings); null for a temporary directory deleted
     * afterwards. {@code log} may be null.
     */
    public FlatQuantQuantizer(Context context, CalibrationBudget budget, Path workDir, PrintStream log) {
        this(context, budget, workDir, log, Set.of());
    }

    /**
     * As above, with {@code wideBlocks} calibrated and run at W8A8 ({@link QuantScheme#widened}; the
     * KV cache keeps the method's quantizer): the sensitive blocks of a mixed-precision model, e.g.
     * SmolLM2's block 11, which creates a massive activation.
     */
    public FlatQuantQuantizer(Context context, CalibrationBudget budget, Path workDir, PrintStream log, Set<Integer> wideBlocks) {
        this(context, budget, workDir, log, wideBlocks, Gptq.Options.defaults());
    }

    /** As above, with the GPTQ settings of the {@code -gptq} methods (the reference's: {@link Gptq.Options#defaults}). */
    public FlatQuantQuantizer(Context context, CalibrationBudget budget, Path workDir, PrintStream log, Set<Integer> wideBlocks, Gptq.Options gptq) {
        if (gptq == null) throw new IllegalArgumentException("GPTQ options are required (Gptq.Options.defaults())");
        this.gptq = gptq;
        if (wideBlocks == null) throw new IllegalArgumentException("wideBlocks must not be null (empty for none)");
        this.wideBlocks = java.util.Collections.unmodifiableSortedSet(new java.util.TreeSet<>(wideBlocks));
        if (context == null) throw new IllegalArgumentException("FlatQuant layers run on a native context (lowbit_quantize + lowbit_gemm_dequant); got none");
        if (budget == null) throw new IllegalArgumentException("a calibration budget is required");
        this.context = context;
        this.budget = budget;
        this.workDir = workDir;
        this.log = log;
    }

    /** Calibrates and installs FlatQuant layers (and, for KV4, the cache codec) into {@code model}, a fresh load of {@code ws}'s model. */
    public QuantizedModel quantize(Workspace ws, DecoderModel model, QuantMethod method) throws IOException {
        if (!method.isFlatQuant()) throw new IllegalArgumentException(method.id() + " is not a FlatQuant method");
        if (ws.isCheckpoint()) throw new IllegalArgumentException("FlatQuant calibration reads a llama GGUF; got a checkpoint directory");
        long start = System.nanoTime();
        try (GgufFile g = GgufFile.open(ws.gguf())) {
            LlamaConfig c = LlamaConfig.fromGguf(g);
            if (c.blockCount() != model.shape().blockCount()) {
                throw new IllegalArgumentException("the model has " + model.shape().blockCount() + " blocks, its GGUF " + c.blockCount());
            }
            QuantScheme scheme = method.flatQuantScheme(c.headDim());
            for (int b : wideBlocks) {
                if (b >= c.blockCount()) throw new IllegalArgumentException("block " + b + " to keep at W8A8 does not exist: the model has " + c.blockCount() + " blocks");
            }
            Map<String, double[]> params = calibrate(ws, method, scheme, c.blockCount());
            RotaryEmbedding rope = RotaryEmbedding.of(c, g.hasTensor("rope_freqs.weight") ? g.readFloats("rope_freqs.weight") : null);
            String description = method.description() + "; " + scheme.name() + (wideBlocks.isEmpty() ? "" : ", blocks " + wideBlocks + " at W8A8")
                    + ", calibration " + budget;
            int[] gptqTokens = usesGptq(method) ? ws.calibrationTokens(Math.min(DEFAULT_GPTQ_TOKENS, c.contextLength())) : null;
            if (gptqTokens != null) description += ", GPTQ on " + gptqTokens.length + " tokens" + (gptq.actOrder() ? " (act-order)" : "");
            QuantizedModel q = build(context, model, c, b -> LlamaBlock.fromGguf(g, c, b, rope), method, scheme, wideBlocks, params,
                    ws.calibrationTokens(REPORT_TOKENS), description, (long) budget.samples() * budget.seqLen(), gptqTokens, gptq, log);
            if (log != null) log.printf(Locale.ROOT, "quantized %s in %.1f s%n", method.id(), (System.nanoTime() - start) / 1e9);
            return q;
        }
    }

    /** Tokens of calibration text whose FP layer inputs measure each layer's error for the report. */
    static final int REPORT_TOKENS = 16;

    /**
     * Calibration tokens of the GPTQ pass (one sequence, capped at the model's context length): the
     * reference's sequence length, more than the largest layer input (1536 on SmolLM2), so {@code H} has
     * full rank before dampening.
     */
    public static final int DEFAULT_GPTQ_TOKENS = 2048;

    /** True for the FlatQuant methods whose weights GPTQ rounds. */
    static boolean usesGptq(QuantMethod method) {
        return method.isFlatQuant() && method.id().endsWith("-gptq");
    }

    /** The method whose calibration a GPTQ method shares (itself for the others). */
    static String calibrationName(QuantMethod method) {
        return usesGptq(method) ? method.id().substring(0, method.id().length() - "-gptq".length()) : method.id();
    }

    /** Reads block {@code b} of the base model (in FP64, unfolded). */
    interface BlockReader {
        LlamaBlock read(int b) throws IOException;
    }

    /**
     * The inference part of {@link #quantize} once the calibrated {@code params} exist: per block the
     * parameters loaded into its {@link BlockTransforms} (seeded as the calibration seeded them), the
     * fold and the layers ({@link FlatQuantBlock}), a report row per layer (its online transform's
     * factor sizes in the method name, its relative output error on the FP inputs of {@code
     * reportTokens}, see {@link FlatQuantLayerErrors}), all installed into {@code model} (the FP model
     * of config {@code c}, not yet modified) with the KV codec when the scheme quantizes the cache.
     */
    static QuantizedModel build(Context context, DecoderModel model, LlamaConfig c, BlockReader blocks, QuantMethod method, QuantScheme scheme,
                                Set<Integer> wideBlocks, Map<String, double[]> params, int[] reportTokens, String description, long calibrationTokens)
            throws IOException {
        return build(context, model, c, blocks, method, scheme, wideBlocks, params, reportTokens, description, calibrationTokens, null, null, null);
    }

    /**
     * As above; for a GPTQ method ({@link #usesGptq}) {@code gptqTokens} (one sequence of calibration
     * tokens) and {@code gptq} are required: the blocks are built with {@link GptqPendingLinear}s,
     * installed, run once over {@code gptqTokens} (each layer rounds its weights from its first
     * input), then replaced by the resulting {@link FlatQuantLinear}s; the report rows are measured on
     * those (each block read again). {@code log} (may be null) gets the GPTQ pass's time.
     */
    static QuantizedModel build(Context context, DecoderModel model, LlamaConfig c, BlockReader blocks, QuantMethod method, QuantScheme scheme,
                                Set<Integer> wideBlocks, Map<String, double[]> params, int[] reportTokens, String description, long calibrationTokens,
                                int[] gptqTokens, Gptq.Options gptq, PrintStream log)
            throws IOException {
        boolean useGptq = usesGptq(method);
        if (useGptq && (gptqTokens == null || gptqTokens.length < 1 || gptq == null)) {
            throw new IllegalArgumentException(method.id() + " rounds its weights by GPTQ: calibration tokens and GPTQ options are required");
        }
        if (!useGptq && gptqTokens != null) throw new IllegalArgumentException(method.id() + " rounds to nearest; GPTQ tokens given");
        if (useGptq && gptqTokens.length > c.contextLength()) {
            throw new IllegalArgumentException("the GPTQ pass runs one sequence of at most " + c.contextLength() + " tokens (the context length), got " + gptqTokens.length);
        }
        Map<String, float[]> fpInputs = fpInputs(model, reportTokens);
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        Map<String, float[]> norms = new LinkedHashMap<>();
        List<FlatQuantKvCodec.Layer> kv = new ArrayList<>();
        List<QuantizationReport.Row> rows = new ArrayList<>();
        try {
            for (int b = 0; b < c.blockCount(); b++) {
                LlamaBlock block = blocks.read(b);
                String p = "blk." + b + ".";
                QuantScheme sb = wideBlocks.contains(b) ? scheme.widened() : scheme;
                BlockTransforms t = transforms(p, block, sb, params, b);
                FlatQuantBlock fq = FlatQuantBlock.build(context, block, t, sb, useGptq ? gptq : null);
                layers.putAll(prefixed(p, fq.layers()));
                norms.put(p + "attn_norm", fq.attnNorm());
                norms.put(p + "ffn_norm", fq.ffnNorm());
                if (!useGptq) rows.addAll(reportRows(p, block, t, fq, sb, fpInputs, reportTokens.length));
                if (fq.kv() != null) kv.add(fq.kv());
            }
        } catch (IOException | RuntimeException e) {
            for (LinearOp op : layers.values()) op.close();
            throw e;
        }
        // KV4 caches hold packed 4-bit codes (the same values as the simulated float cache, an eighth of its code bytes)
        FlatQuantKvCodec codec = scheme.kv() == null ? null
                : new FlatQuantKvCodec(c.headCount(), c.kvHeadCount(), c.headDim(), scheme.kv(), kv, scheme.kv().bits() <= 4);
        if (useGptq) {
            try {
                layers = roundByGptq(model, layers, norms, codec, gptqTokens, log);
                for (int b = 0; b < c.blockCount(); b++) {
                    LlamaBlock block = blocks.read(b);
                    String p = "blk." + b + ".";
                    QuantScheme sb = wideBlocks.contains(b) ? scheme.widened() : scheme;
                    Map<String, LinearOp> own = new LinkedHashMap<>();
                    for (String l : block.linears()) own.put(l, layers.get(p + l));
                    FlatQuantBlock fq = new FlatQuantBlock(norms.get(p + "attn_norm"), norms.get(p + "ffn_norm"), own, null);
                    rows.addAll(reportRows(p, block, transforms(p, block, sb, params, b), fq, sb, fpInputs, reportTokens.length));
                }
            } catch (IOException | RuntimeException e) {
                for (LinearOp op : layers.values()) op.close();
                throw e;
            }
        }
        return QuantizedModel.install(model, method, description, QuantizationReport.of(description, rows), layers, norms, calibrationTokens, codec);
    }

    /** Block {@code b}'s transforms with the calibrated {@code params} (seeded as the calibration seeded them). */
    private static BlockTransforms transforms(String prefix, LlamaBlock block, QuantScheme scheme, Map<String, double[]> params, int b) {
        BlockTransforms t = new BlockTransforms(prefix, block, null, scheme, BlockTransforms.DEFAULT_ALPHA, BlockwiseCalibration.blockSeed(SEED, b));
        t.load(params);
        return t;
    }

    /**
     * The GPTQ pass: {@code pending} layers and folded {@code norms} installed into {@code model}, one
     * forward pass over {@code tokens} (with the KV {@code codec}, if any, as at inference: every
     * layer rounds its weights from the input it receives, earlier layers already quantized), then
     * the rounded layers installed in their place; returns them by name.
     */
    private static Map<String, LinearOp> roundByGptq(DecoderModel model, Map<String, LinearOp> pending, Map<String, float[]> norms, KvCache.Codec codec,
                                                     int[] tokens, PrintStream log) {
        long start = System.nanoTime();
        for (Map.Entry<String, float[]> e : norms.entrySet()) model.setNormWeight(e.getKey(), e.getValue());
        for (Map.Entry<String, LinearOp> e : pending.entrySet()) model.replaceLinear(e.getKey(), e.getValue());
        DecoderModel runner = codec == null ? model : new KvCodecModel(model, codec);
        runner.forwardHidden(runner.newKvCache(tokens.length), tokens);
        Map<String, LinearOp> rounded = new LinkedHashMap<>();
        for (Map.Entry<String, LinearOp> e : pending.entrySet()) {
            LinearOp op = e.getValue() instanceof GptqPendingLinear g ? g.resolved() : e.getValue();
            rounded.put(e.getKey(), op);
            model.replaceLinear(e.getKey(), op);
        }
        if (log != null) log.printf(Locale.ROOT, "GPTQ: %d layers rounded on %d tokens in %.1f s%n", rounded.size(), tokens.length, (System.nanoTime() - start) / 1e9);
        return rounded;
    }

    /** The report rows of one block's layers: errors on the FP inputs of the report tokens ({@link FlatQuantLayerErrors}). */
    private static List<QuantizationReport.Row> reportRows(String p, LlamaBlock block, BlockTransforms t, FlatQuantBlock fq, QuantScheme sb,
                                                           Map<String, float[]> fpInputs, int sampleTokens) {
        Map<Site, float[]> inputs = new EnumMap<>(Site.class);
        for (String reader : List.of("attn_q", "attn_output", "ffn_gate", "ffn_down")) {
            float[] x = fpInputs.get(p + reader);
            if (x != null) inputs.put(Site.inputOf(reader), x);
        }
        Map<String, Double> errors = FlatQuantLayerErrors.measure(block, t, fq, inputs, sampleTokens);
        List<QuantizationReport.Row> rows = new ArrayList<>();
        for (Map.Entry<String, LinearOp> e : fq.layers().entrySet()) {
            FlatQuantLinear op = (FlatQuantLinear) e.getValue();
            rows.add(new QuantizationReport.Row(p + e.getKey(), sb.activations().bits() <= 4 ? Precision.INT4 : Precision.INT8,
                    op.inFeatures(), op.inFeatures(), op.outFeatures(), Double.NaN, Double.NaN, errors.get(e.getKey()),
                    2L * op.outFeatures() * op.inFeatures(), reportMethod(sb, op.transform()), 0));
        }
        return rows;
    }

    /** A FlatQuant report row's method: the scheme and the online transform's factor sizes ({@code P 24x24}; {@code (P2=I)} for an identity factor). */
    static String reportMethod(QuantScheme scheme, OnlineTransform t) {
        if (t == null) return "FlatQuant " + scheme.name() + " no transform";
        int[] f = t.factorSizes();
        String identity = t.p1() == null && t.p2() == null ? " (P1=P2=I)" : t.p1() == null ? " (P1=I)" : t.p2() == null ? " (P2=I)" : "";
        return "FlatQuant " + scheme.name() + " P " + f[0] + "x" + f[1] + identity;
    }

    private static Map<String, LinearOp> prefixed(String p, Map<String, LinearOp> layers) {
        Map<String, LinearOp> m = new LinkedHashMap<>();
        for (Map.Entry<String, LinearOp> e : layers.entrySet()) m.put(p + e.getKey(), e.getValue());
        return m;
    }

    /** The FP model's inputs of the first reader of each block linear input ({@code blk.N.attn_q}, attn_output, ffn_gate, ffn_down) for {@code tokens}. */
    private static Map<String, float[]> fpInputs(DecoderModel model, int[] tokens) {
        Map<String, float[]> inputs = new LinkedHashMap<>();
        if (tokens.length == 0) return inputs;
        LinearInputHook hook = (layer, x, n, in) -> {
            if (layer.startsWith("blk.") && (layer.endsWith(".attn_q") || layer.endsWith(".attn_output") || layer.endsWith(".ffn_gate")
                    || layer.endsWith(".ffn_down"))) {
                inputs.put(layer, java.util.Arrays.copyOf(x, n * in));
            }
        };
        model.addInputHook(hook);
        try {
            model.forwardHidden(model.newKvCache(tokens.length), tokens);
        } finally {
            model.removeInputHook(hook);
        }
        return inputs;
    }

    private Map<String, double[]> calibrate(Workspace ws, QuantMethod method, QuantScheme scheme, int blocks) throws IOException {
        CalibrationOptions o = new CalibrationOptions(budget.samples(), 0, budget.seqLen(), budget.epochs(), budget.batchSize(), blocks,
                false, 1e-3, SEED, false);
        boolean temporary = workDir == null;
        String name = calibrationName(method) + (wideBlocks.isEmpty() ? "" : "-w8a8-blocks-" + wideBlocks.toString().replaceAll("[^0-9]+", "_"));
        Path dir = temporary ? Files.createTempDirectory("lowbit-flatquant-") : workDir.resolve(name);
        try {
            CalibrationResult r = BlockwiseCalibration.run(ws, FlatQuantMethod.authors(scheme, wideBlocks), o, dir, CalibrationListener.blockLog(log, method.id()));
            if (log != null) {
                StringBuilder b = new StringBuilder(method.id() + " block losses (init -> final):");
                for (BlockReport br : r.reports()) b.append(String.format(Locale.ROOT, " %d:%.3g->%.3g", br.block(), br.initialLoss(), br.finalLoss()));
                log.println(b);
            }
            return r.params();
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
}
