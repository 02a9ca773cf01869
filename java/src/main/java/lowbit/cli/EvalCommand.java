package lowbit.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import lowbit.Context;
import lowbit.abq.AbqWidthPolicy;
import lowbit.abq.BitPlaneGemmTimer;
import lowbit.eval.Perplexity;
import lowbit.model.DecoderModel;
import lowbit.pipeline.AbqQuantizer;
import lowbit.pipeline.FlatQuantQuantizer;
import lowbit.pipeline.ModelCalibration;
import lowbit.pipeline.ModelQuantizer;
import lowbit.pipeline.PerplexityTable;
import lowbit.pipeline.QuantMethod;
import lowbit.pipeline.QuantizedModel;
import lowbit.pipeline.Workspace;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code lowbit eval}: perplexity of the FP model and of quantized configurations (methods
 * quantized here from one shared calibration, and/or quantized model files) on the same slice of
 * the evaluation text, as one table.
 */
@Command(name = "eval", description = "Perplexity of FP vs quantized configurations on one evaluation slice.")
final class EvalCommand implements Callable<Integer> {
    @Mixin
    ModelOptions options = new ModelOptions();

    @Option(names = "--methods", split = ",", description = "methods to quantize and evaluate (fp, w8a8-static, w8a8-flatten, "
            + "flatten-mixed, w4a8-rtn, w8a8-token, dgq, dgq-g64, dgq-g32, dgq-authors, abq-w6a6, abq-w4a4, abq-w2a8, 'abq-w2*a8', each ABQ one also "
            + "with -nodc or -rtn; abq-w6a8-rtn, abq-w8a6-rtn, abq-w8a8-rtn), abq-w6a6-flat, abq-w6a6-flat-asym (ABQ's bit-plane GEMM on FlatQuant's "
            + "learned transforms; also with -gptq), abq-w6a8-flat, abq-w8a6-flat, abq-auto (a width per layer, see --abq-candidates), w4a4-rtn, smoothquant-w4a4, flatquant-w4a4, flatquant-w4a4-kv4, flatquant-w4a8, flatquant-w8a8, "
            + "each W4 FlatQuant one also with -gptq (GPTQ weights; shares the RTN method's calibration checkpoint in --flatquant-dir); "
            + "default: all but the DGQ, ABQ, W4A4 and FlatQuant ones")
    List<String> methods = new ArrayList<>(List.of("fp", "w8a8-static", "w8a8-flatten", "flatten-mixed", "w4a8-rtn", "w8a8-token"));

    @Option(names = "--dgq-search", split = ",", description = "DGQ grid search: phase-1 candidates, phase-2 candidates, search tokens "
            + "per layer (at most --sample-tokens are kept); default 20,80,128 (the authors' grids)")
    List<Integer> dgqSearch = new ArrayList<>(List.of(20, 80, 128));

    @Mixin
    AbqOptions abq = new AbqOptions();

    @Option(names = "--flatquant-budget", description = "FlatQuant calibration budget: reduced (8 sequences x 128 tokens, 2 epochs, batch 2; "
            + "minutes per method on 2 cores), authors (128 x 2048, 15 epochs, batch 4) or four integers sequences,tokens,epochs,batch; "
            + "default ${DEFAULT-VALUE}")
    String flatQuantBudget = "reduced";

    @Option(names = "--flatquant-8bit-blocks", split = ",", description = "FlatQuant: blocks calibrated and run at W8A8 (weights and "
            + "activations; the KV cache keeps the method's quantizer), e.g. 11 for SmolLM2's block with the massive activation; default none")
    List<Integer> flatQuant8BitBlocks = new ArrayList<>();

    @Option(names = "--gptq-act-order", description = "FlatQuant -gptq methods: round the columns by descending Hessian diagonal "
            + "(GPTQ's act-order; same packed format); default off, as the reference")
    boolean gptqActOrder;

    @Option(names = "--flatquant-dir", description = "keep FlatQuant calibration checkpoints here (one directory per method, resumable); "
            + "default: a temporary directory")
    Path flatQuantDir;

    @Option(names = "--file", description = "quantized model files to evaluate as well (repeatable)")
    List<Path> files = new ArrayList<>();

    @Option(names = "--windows", description = "evaluation windows, default ${DEFAULT-VALUE}")
    int windows = 1;

    @Option(names = "--window", description = "tokens per window, default ${DEFAULT-VALUE} (the protocol's)")
    int window = Perplexity.DEFAULT_WINDOW;

    @Option(names = "--markdown", description = "print the table as Markdown")
    boolean markdown;

    /** The abq-auto policy of the ABQ options. */
    AbqWidthPolicy abqWidthPolicy() {
        return abq.widthPolicy();
    }

    private ModelCalibration calibrate(Workspace ws) throws java.io.IOException {
        return ModelCalibration.run(ws.loadModel(), ws.calibrationTokens(options.calibTokens), options.calibWindow, options.statsOptions(),
                System.out);
    }

    @Override
    public Integer call() throws Exception {
        long start = System.nanoTime();
        List<QuantMethod> parsed = new ArrayList<>();
        for (String m : methods) parsed.add(QuantMethod.parse(m));
        // a bad budget is reported before anything runs
        lowbit.pipeline.CalibrationBudget flatQuant = parsed.stream().anyMatch(QuantMethod::isFlatQuant) ? FlatQuantQuantizer.parseBudget(flatQuantBudget) : null;
        AbqWidthPolicy widthPolicy = parsed.contains(QuantMethod.ABQ_AUTO) ? abqWidthPolicy() : null;
        Workspace ws = Workspace.open(options.model);
        int[] evaluation = ws.evaluationTokens(windows, window);
        System.out.printf("model %s; evaluation: %d windows of %d tokens (no BOS)%n", ws.gguf(), windows, window);
        PerplexityTable table = new PerplexityTable();
        ModelCalibration cal = null;
        try (Context ctx = Context.open(options.backend())) {
            for (QuantMethod m : parsed) {
                DecoderModel model = ws.loadModel();
                if (m == QuantMethod.FP) {
                    table.add(m.description(), Perplexity.evaluate(model, evaluation, window, System.out), null);
                    continue;
                }
                if (m == QuantMethod.ABQ_AUTO) {
                    if (cal == null) cal = calibrate(ws);
                    try (QuantizedModel q = new AbqQuantizer(ctx, abq.budget(), abq.dir, System.out)
                            .quantizeAuto(model, cal, widthPolicy, new BitPlaneGemmTimer(ctx, abq.timingRuns))) {
                        System.out.print(q.table());
                        table.add(m.description(), Perplexity.evaluate(q.model(), evaluation, window, System.out), q);
                    }
                    System.out.print(table.format(markdown));
                    continue;
                }
                if (m.isAbq()) {
                    try (QuantizedModel q = new AbqQuantizer(ctx, abq.budget(), abq.dir, System.out).quantize(ws, model, m)) {
                        table.add(m.description(), Perplexity.evaluate(q.model(), evaluation, window, System.out), q);
                    }
                    System.out.print(table.format(markdown));
                    continue;
                }
                if (m.isFlatQuant()) {
                    try (QuantizedModel q = new FlatQuantQuantizer(ctx, flatQuant, flatQuantDir, System.out, java.util.Set.copyOf(flatQuant8BitBlocks),
                            lowbit.quant.Gptq.Options.defaults().withActOrder(gptqActOrder))
                            .quantize(ws, model, m)) {
                        table.add(m.description(), Perplexity.evaluate(q.model(), evaluation, window, System.out), q);
                    }
                    System.out.print(table.format(markdown));
                    continue;
                }
                if (cal == null) cal = calibrate(ws);
                try (QuantizedModel q = ModelOptions.dgqSearch(new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, System.out), dgqSearch).quantize(model, cal, m)) {
                    System.out.print(q.table());
                    table.add(m.description(), Perplexity.evaluate(q.model(), evaluation, window, System.out), q);
                }
                System.out.print(table.format(markdown));
            }
            for (Path f : files) {
                try (QuantizedModel q = lowbit.pipeline.QuantizedModelFile.load(f, ws.loadModel(), ctx)) {
                    table.add(f.getFileName() + " (" + q.method().id() + ")", Perplexity.evaluate(q.model(), evaluation, window, System.out), q);
                }
            }
        }
        System.out.println();
        System.out.print(table.format(markdown));
        System.out.printf("calibration: %d tokens; %.0f s in all%n", options.calibTokens, (System.nanoTime() - start) / 1e9);
        return 0;
    }
}
