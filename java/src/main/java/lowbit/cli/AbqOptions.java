package lowbit.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import lowbit.abq.AbqWidthPolicy;
import lowbit.pipeline.CalibrationBudget;
import picocli.CommandLine.Option;

/** The ABQ-LLM options that {@code lowbit eval} and {@code lowbit quantize} share: calibration budget and checkpoints, abq-auto's policy. */
final class AbqOptions {
    @Option(names = "--abq-budget", split = ",", description = "ABQ calibration budget: sequences, tokens per sequence, epochs, batch; "
            + "default 8,128,2,2 (reduced for a 2-core machine; the authors: 128,2048,20,1)")
    List<Integer> budget = new ArrayList<>(List.of(8, 128, 2, 2));

    @Option(names = "--abq-dir", description = "keep ABQ calibration checkpoints here (one directory per method, resumable); default: a temporary directory")
    Path dir;

    @Option(names = "--abq-candidates", split = ",", description = "abq-auto: the widths each layer chooses from, W<weight bits>A<activation "
            + "bits> with 1..8 bits each, W1*/W2* for bit-balanced weights (quote the star in a shell); default "
            + "W8A8,W6A6,W4A8,W4A4,W3A8,W2*A8,W2A8")
    List<String> candidates = new ArrayList<>(AbqWidthPolicy.DEFAULT_CANDIDATES);

    @Option(names = "--abq-error-budget", description = "abq-auto: per-layer budget on the relative output MSE (sum (y_q - y)^2 / sum y^2 "
            + "on the calibration sample, round to nearest); each layer takes the fastest width within it, the widest if none is; "
            + "default ${DEFAULT-VALUE}")
    double errorBudget = AbqWidthPolicy.DEFAULT_ERROR_BUDGET;

    @Option(names = "--abq-timing", split = ",", description = "abq-auto: tokens M at which the bit-plane GEMM of each layer shape is "
            + "timed on the backend (times summed); default 1,128 (decode and a prefill chunk)")
    List<Integer> timing = new ArrayList<>(AbqWidthPolicy.DEFAULT_TIMING_TOKENS);

    @Option(names = "--abq-timing-runs", description = "abq-auto: timed runs per shape, width and M (the median is kept), default ${DEFAULT-VALUE}")
    int timingRuns = 5;

    /** The budget of {@code --abq-budget} (four integers). */
    CalibrationBudget budget() {
        if (budget.size() != 4) {
            throw new IllegalArgumentException("--abq-budget takes four integers (sequences, tokens per sequence, epochs, batch), got " + budget);
        }
        return new CalibrationBudget(budget.get(0), budget.get(1), budget.get(2), budget.get(3));
    }

    /** The abq-auto policy of {@code --abq-candidates}, {@code --abq-error-budget} and {@code --abq-timing}. */
    AbqWidthPolicy widthPolicy() {
        if (timingRuns < 1) throw new IllegalArgumentException("--abq-timing-runs must be >= 1, got " + timingRuns);
        return AbqWidthPolicy.parse(candidates, errorBudget, timing);
    }
}
