package lowbit.cli;

import java.nio.file.Path;
import java.util.Locale;
import lowbit.Backend;
import lowbit.quant.CalibrationStats;
import picocli.CommandLine.Option;

/** Options shared by the real-model commands: base model, backend, calibration sizes. */
final class ModelOptions {
    @Option(names = "--model", description = "base model: a llama GGUF file or a Hugging Face checkpoint directory (llama, mistral, opt; default: the embedded SmolLM2-135M-Instruct, fetched into ~/.cache/lowbit)")
    Path model;

    @Option(names = "--backend", description = "CPU, CUDA or AUTO for the integer kernels, default ${DEFAULT-VALUE}")
    String backend = "CPU";

    @Option(names = "--calib-tokens", description = "calibration tokens (from the calibration works), default ${DEFAULT-VALUE}")
    int calibTokens = 1024;

    @Option(names = "--calib-window", description = "tokens per calibration forward pass, default ${DEFAULT-VALUE}")
    int calibWindow = 512;

    @Option(names = "--sample-tokens", description = "calibration tokens kept per layer for the threshold search, default ${DEFAULT-VALUE}")
    int sampleTokens = 96;

    /** {@code q} with the DGQ search of {@code --dgq-search} (three integers). */
    static lowbit.pipeline.ModelQuantizer dgqSearch(lowbit.pipeline.ModelQuantizer q, java.util.List<Integer> search) {
        if (search.size() != 3) {
            throw new IllegalArgumentException("--dgq-search takes three integers (phase-1 candidates, phase-2 candidates, tokens), got " + search);
        }
        return q.withDgqSearch(search.get(0), search.get(1), search.get(2));
    }

    Backend backend() {
        return backend.equalsIgnoreCase("AUTO") ? Backend.auto() : Backend.valueOf(backend.toUpperCase(Locale.ROOT));
    }

    CalibrationStats.Options statsOptions() {
        if (sampleTokens < 1) throw new IllegalArgumentException("--sample-tokens must be >= 1");
        return CalibrationStats.Options.defaults().withSampleTokens(sampleTokens);
    }
}
