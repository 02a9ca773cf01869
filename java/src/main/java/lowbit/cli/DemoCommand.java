package lowbit.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import lowbit.Context;
import lowbit.eval.Perplexity;
import lowbit.model.DecoderModel;
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
 * {@code lowbit demo}, the main job: fetch the embedded model, calibrate on a calibration slice,
 * quantize with FlattenQuant on the native backend — W8A8 with flattening, and the paper's mixed
 * INT4/INT8 policy — and print FP vs quantized perplexity on a slice of the evaluation text plus the
 * per-layer bit-width table of the last method.
 */
@Command(name = "demo", description = "FlattenQuant on the embedded SmolLM2-135M: calibrate, quantize (W8A8 flattening and "
        + "the mixed INT4/INT8 policy), print FP vs quantized perplexity and the per-layer bit widths (a few minutes on 2 cores).")
final class DemoCommand implements Callable<Integer> {
    @Mixin
    ModelOptions options = new ModelOptions();

    @Option(names = "--methods", split = ",", description = "quantization methods (fp is always measured), "
            + "default ${DEFAULT-VALUE}")
    List<String> methods = new ArrayList<>(List.of(QuantMethod.W8A8_FLATTEN.id(), QuantMethod.FLATTEN_MIXED.id()));

    @Option(names = "--windows", description = "evaluation windows, default ${DEFAULT-VALUE}")
    int windows = 4;

    @Option(names = "--window", description = "tokens per evaluation window, default ${DEFAULT-VALUE}")
    int window = 512;

    DemoCommand() {
        options.calibTokens = 1024;
    }

    @Override
    public Integer call() throws Exception {
        long start = System.nanoTime();
        List<QuantMethod> parsed = new ArrayList<>();
        for (String id : methods) {
            QuantMethod m = QuantMethod.parse(id);
            if (m == QuantMethod.FP) {
                throw new IllegalArgumentException("--methods: fp is always measured; list quantization methods only");
            }
            parsed.add(m);
        }
        Workspace ws = Workspace.open(options.model);
        System.out.println("model: " + ws.gguf());
        int[] calibration = ws.calibrationTokens(options.calibTokens);
        int[] evaluation = ws.evaluationTokens(windows, window);
        DecoderModel model = ws.loadModel();
        System.out.printf("evaluation: %d windows of %d tokens (no BOS); calibration: %d tokens%n", windows, window, calibration.length);
        PerplexityTable table = new PerplexityTable();
        table.add(QuantMethod.FP.description(), Perplexity.evaluate(model, evaluation, window, System.out), null);
        ModelCalibration cal = ModelCalibration.run(model, calibration, options.calibWindow, options.statsOptions(), System.out);
        String lastReport = "";
        try (Context ctx = Context.open(options.backend())) {
            for (QuantMethod m : parsed) {
                // A fresh graph per method: quantizing folds smoothing into the norm weights.
                try (QuantizedModel q = new ModelQuantizer(ModelQuantizer.defaultConfig(), ctx, System.out)
                        .quantize(ws.loadModel(), cal, m)) {
                    table.add(m.description() + " [" + ctx.backend() + "]",
                            Perplexity.evaluate(q.model(), evaluation, window, System.out), q);
                    lastReport = m.description() + ", per layer:\n" + q.table();
                }
            }
        }
        System.out.println();
        System.out.print(lastReport);
        System.out.println();
        System.out.print(table.format(false));
        System.out.printf("demo finished in %.0f s%n", (System.nanoTime() - start) / 1e9);
        return 0;
    }
}
