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
import lowbit.flatquant.OnlineTransform;
import lowbit.flatquant.QuantScheme;
import lowbit.io.GgufFile;
import lowbit.model.DecoderModel;
import lowbit.model.LinearInputHook;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
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
 * weights are round-to-nearest with the learned clip (the authors' "RTN" rows; no GPTQ).
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
            QuantizedModel q = build(context, model, c, b -> LlamaBlock.fromGguf(g, c, b, rope), method, scheme, wideBlocks, params,
                    ws.calibrationTokens(REPORT_TOKENS), description, (long) budget.samples() * budget.seqLen());
            if (log != null) log.printf(Locale.ROOT, "quantized %s in %.1f s%n", method.id(), (System.nanoTime() - start) / 1e9);
            return q;
        }
    }

    /** Tokens of calibration text whose FP layer inputs measure each layer's error for the report. */
    static final int REPORT_TOKENS = 16;

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
        Map<String, float[]> fpInputs = fpInputs(model, reportTokens);
        int sampleTokens = reportTokens.length;
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        Map<String, float[]> norms = new LinkedHashMap<>();
        List<FlatQuantKvCodec.Layer> kv = new ArrayList<>();
        List<QuantizationReport.Row> rows = new ArrayList<>();
        try {
            for (int b = 0; b < c.blockCount(); b++) {
                LlamaBlock block = blocks.read(b);
                String p = "blk." + b + ".";
                QuantScheme sb = wideBlocks.contains(b) ? scheme.widened() : scheme;
                BlockTransforms t = new BlockTransforms(p, block, null, sb, BlockTransforms.DEFAULT_ALPHA, BlockwiseCalibration.blockSeed(SEED, b));
                t.load(params);
                FlatQuantBlock fq = FlatQuantBlock.build(context, block, t, sb);
                layers.putAll(prefixed(p, fq.layers()));
                norms.put(p + "attn_norm", fq.attnNorm());
                norms.put(p + "ffn_norm", fq.ffnNorm());
                Map<Site, float[]> inputs = new EnumMap<>(Site.class);
                for (String reader : List.of("attn_q", "attn_output", "ffn_gate", "ffn_down")) {
                    float[] x = fpInputs.get(p + reader);
                    if (x != null) inputs.put(Site.inputOf(reader), x);
                }
                Map<String, Double> errors = FlatQuantLayerErrors.measure(block, t, fq, inputs, sampleTokens);
                for (Map.Entry<String, LinearOp> e : fq.layers().entrySet()) {
                    FlatQuantLinear op = (FlatQuantLinear) e.getValue();
                    rows.add(new QuantizationReport.Row(p + e.getKey(), sb.activations().bits() <= 4 ? Precision.INT4 : Precision.INT8,
                            op.inFeatures(), op.inFeatures(), op.outFeatures(), Double.NaN, Double.NaN, errors.get(e.getKey()),
                            2L * op.outFeatures() * op.inFeatures(), reportMethod(sb, op.transform()), 0));
                }
                if (fq.kv() != null) kv.add(fq.kv());
            }
        } catch (IOException | RuntimeException e) {
            for (LinearOp op : layers.values()) op.close();
            throw e;
        }
        // KV4 caches hold packed 4-bit codes (the same values as the simulated float cache, an eighth of its code bytes)
        FlatQuantKvCodec codec = scheme.kv() == null ? null
                : new FlatQuantKvCodec(c.headCount(), c.kvHeadCount(), c.headDim(), scheme.kv(), kv, scheme.kv().bits() <= 4);
        return QuantizedModel.install(model, method, description, QuantizationReport.of(description, rows), layers, norms, calibrationTokens, codec);
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
        String name = method.id() + (wideBlocks.isEmpty() ? "" : "-w8a8-blocks-" + wideBlocks.toString().replaceAll("[^0-9]+", "_"));
        Path dir = temporary ? Files.createTempDirectory("lowbit-flatquant-") : workDir.resolve(name);
        try {
            CalibrationResult r = BlockwiseCalibration.run(ws, FlatQuantMethod.authors(scheme, wideBlocks), o, dir, new CalibrationListener() {
                @Override
                public void onBlockDone(BlockReport report) {
                    if (log != null) {
                        log.printf(Locale.ROOT, "%s block %d: loss %.4e -> %.4e (%d steps, %.1f s)%n", method.id(), report.block(),
                                report.initialLoss(), report.finalLoss(), report.steps(), report.seconds());
                    }
                }
            });
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
