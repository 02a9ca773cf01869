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
import lowbit.abq.AbqFold;
import lowbit.abq.AbqLinear;
import lowbit.abq.AbqMethod;
import lowbit.abq.ClippedWeightQuantizer;
import lowbit.abq.IntCodes;
import lowbit.calibrate.BlockReport;
import lowbit.calibrate.BlockwiseCalibration;
import lowbit.calibrate.CalibrationListener;
import lowbit.calibrate.CalibrationOptions;
import lowbit.calibrate.CalibrationResult;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.calibrate.Var;
import lowbit.io.GgufFile;
import lowbit.model.DecoderModel;
import lowbit.model.LinearOp;
import lowbit.model.LlamaConfig;
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
        if (ws.isCheckpoint()) throw new IllegalArgumentException("ABQ calibration reads a llama GGUF; got a checkpoint directory");
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

    private Map<String, double[]> calibrate(Workspace ws, QuantMethod method, AbqConfig cfg, int blocks) throws IOException {
        CalibrationOptions o = new CalibrationOptions(budget.samples(), 0, budget.seqLen(), budget.epochs(), budget.batchSize(), blocks,
                true, 1.0, 0, false);
        boolean temporary = workDir == null;
        Path dir = temporary ? Files.createTempDirectory("lowbit-abq-") : workDir.resolve(method.id().replace("*", "star"));
        try {
            CalibrationResult r = BlockwiseCalibration.run(ws, new AbqMethod(cfg, blocks), o, dir, new CalibrationListener() {
                @Override
                public void onBlockDone(BlockReport report) {
                    if (log != null) {
                        log.printf(Locale.ROOT, "%s block %d: loss %.4e -> %.4e (%d steps, %.1f s)%n", method.id(), report.block(),
                                report.initialLoss(), report.finalLoss(), report.steps(), report.seconds());
                    }
                }
            });
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

    private static float[] toFloat(double[] a) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) out[i] = (float) a[i];
        return out;
    }
}
