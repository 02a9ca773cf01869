package lowbit.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import lowbit.Context;
import lowbit.abq.AbqWidthPolicy;
import lowbit.abq.BitPlaneGemmTimer;
import lowbit.pipeline.AbqQuantizer;
import lowbit.pipeline.FlatQuantQuantizer;
import lowbit.pipeline.ModelCalibration;
import lowbit.pipeline.ModelQuantizer;
import lowbit.pipeline.QuantMethod;
import lowbit.pipeline.QuantizedModel;
import lowbit.pipeline.QuantizedModelFile;
import lowbit.pipeline.Workspace;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code lowbit quantize}: calibrate, quantize by a method, write a quantized model file, print the per-layer report. */
@Command(name = "quantize", description = "Calibrate and quantize a model; write a quantized model file and print the per-layer report.")
final class QuantizeCommand implements Callable<Integer> {
    @Mixin
    ModelOptions options = new ModelOptions();

    @Option(names = "--method", description = "w8a8-static, w8a8-flatten, flatten-mixed, w4a8-rtn, w8a8-token, dgq (A8W4 G=128), dgq-g64, dgq-g32, dgq-authors, flatquant-w4a4, flatquant-w4a4-kv4, flatquant-w4a8, flatquant-w8a8, or a W4 FlatQuant one with -gptq (GPTQ weights), an ABQ-LLM one (abq-w6a6, abq-w4a4, abq-w2a8, 'abq-w2*a8', each also -nodc or -rtn; abq-w6a6-flat[-asym][-gptq], abq-w6a8-flat, abq-w8a6-flat, abq-auto: bit-plane layers, any width per layer); default ${DEFAULT-VALUE}")
    String method = QuantMethod.FLATTEN_MIXED.id();

    @Option(names = "--dgq-search", split = ",", description = "DGQ grid search: phase-1 candidates, phase-2 candidates, search tokens "
            + "per layer (at most --sample-tokens are kept); default 20,80,128 (the authors' grids)")
    List<Integer> dgqSearch = new ArrayList<>(List.of(20, 80, 128));

    @Mixin
    AbqOptions abq = new AbqOptions();

    @Option(names = {"-o", "--out"}, required = true, description = "quantized model file to write (.safetensors)")
    Path out;

    @Option(names = "--report-json", description = "also write the per-layer report as JSON here")
    Path reportJson;

    @Option(names = "--flatquant-budget", description = "FlatQuant calibration budget: reduced, authors or four integers "
            + "sequences,tokens,epochs,batch (as lowbit eval); default ${DEFAULT-VALUE}")
    String flatQuantBudget = "reduced";

    @Option(names = "--flatquant-8bit-blocks", split = ",", description = "FlatQuant: blocks calibrated and run at W8A8 (weights and "
            + "activations; the KV cache keeps the method's quantizer), e.g. 11 for SmolLM2's block with the massive activation; default none")
    List<Integer> flatQuant8BitBlocks = new ArrayList<>();

    @Option(names = "--flatquant-dir", description = "keep FlatQuant calibration checkpoints here (resumable); default: a temporary directory")
    Path flatQuantDir;

    @Override
    public Integer call() throws Exception {
        QuantMethod m = QuantMethod.parse(method);
        if (m.isFlatQuant()) {
            Workspace ws = Workspace.open(options.model);
            try (Context ctx = Context.open(options.backend());
                 QuantizedModel q = new FlatQuantQuantizer(ctx, FlatQuantQuantizer.parseBudget(flatQuantBudget), flatQuantDir, System.out, java.util.Set.copyOf(flatQuant8BitBlocks))
                         .quantize(ws, ws.loadModel(), m)) {
                write(q);
            }
            return 0;
        }
        if (m.isAbq()) {
            AbqWidthPolicy policy = m == QuantMethod.ABQ_AUTO ? abq.widthPolicy() : null;  // a bad option before anything runs
            Workspace ws = Workspace.open(options.model);
            try (Context ctx = Context.open(options.backend())) {
                AbqQuantizer quantizer = new AbqQuantizer(ctx, abq.budget(), abq.dir, System.out);
                if (m == QuantMethod.ABQ_AUTO) {
                    ModelCalibration cal = ModelCalibration.run(ws.loadModel(), ws.calibrationTokens(options.calibTokens),
                            options.calibWindow, options.statsOptions(), System.out);
                    try (QuantizedModel q = quantizer.quantizeAuto(ws.loadModel(), cal, policy, new BitPlaneGemmTimer(ctx, abq.timingRuns))) {
                        write(q);
                    }
                } else {
                    try (QuantizedModel q = quantizer.quantize(ws, ws.loadModel(), m)) {
                        write(q);
                    }
                }
            }
            return 0;
        }
        Workspace ws = Workspace.open(options.model);
        ModelCalibration cal = ModelCalibration.run(ws.loadModel(), ws.calibrationTokens(options.calibTokens),
                options.calibWindow, options.statsOptions(), System.out);
        try (Context ctx = Context.open(options.backend());
             QuantizedModel q = ModelOptions.dgqSearch(new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, System.out), dgqSearch).quantize(ws.loadModel(), cal, m)) {
            write(q);
        }
        return 0;
    }

    private void write(QuantizedModel q) throws java.io.IOException {
        System.out.print(q.table());
        QuantizedModelFile.save(q, out);
        if (reportJson != null) q.report().write(reportJson);
        System.out.println("wrote " + out);
    }
}
