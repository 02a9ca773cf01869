package lowbit.quant;

import java.util.Locale;
import lowbit.model.LinearOp;

/**
 * Prints the error table of per-tensor INT8 and INT4 quantization with and without smoothing and
 * flattening on synthetic activations with LLM-like outliers ({@link SyntheticActivations}) and
 * random N(0, 1/K) weights. Settings are searched on calibration tokens; the error column is the
 * relative output MSE {@code ||Y_q - Y||² / ||Y||²} on held-out tokens against the FP64 product.
 *
 * <p>Run: {@code java lowbit.quant.SyntheticOutlierExperiment [K N outliers seed]}.
 */
public final class SyntheticOutlierExperiment {
    private SyntheticOutlierExperiment() {}

    /** One measured configuration. */
    record Result(String label, Precision precision, PrecisionSetting setting, double heldOutError) {}

    /** Calibrates, searches and measures one configuration; deterministic for a seed. */
    static Result run(String label, int k, int n, int outliers, int calibrationTokens, int testTokens, QuantConfig config,
                      Precision precision, long seed) {
        SyntheticActivations source = new SyntheticActivations(k, outliers, seed);
        float[] w = SyntheticActivations.weights(n, k, seed + 1);
        CalibrationStats stats = CalibrationStats.create("synthetic", k,
                CalibrationStats.Options.defaults().withSampleTokens(Math.min(256, calibrationTokens)));
        stats.observe(source.tokens(calibrationTokens, seed + 2), calibrationTokens);
        LayerEvaluation eval = new FlattenQuantizer(config).evaluate("synthetic", w, null, n, stats);
        float[] x = source.tokens(testTokens, seed + 3);
        LinearOp layer = eval.build(precision);
        float[] y = new float[testTokens * n];
        layer.forward(x, testTokens, y);
        double err = FlattenQuantizer.relativeError(y, FlattenQuantizer.referenceProduct(x, testTokens, w, n, k));
        return new Result(label, precision, eval.setting(precision), err);
    }

    static String table(int k, int n, int outliers, long seed) {
        QuantConfig base = QuantConfig.defaults();
        Object[][] rows = {
            {"plain per-tensor", base.withExpansionBudget(1.0).withSmoothingAlphas()},
            {"smoothing", base.withExpansionBudget(1.0)},
            {"flattening (K'/K <= 1.25)", base.withSmoothingAlphas()},
            {"smoothing + flattening (1.25)", base},
            {"smoothing + flattening (1.5)", base.withExpansionBudget(1.5)},
            {"smoothing + flattening, dynamic", base.withActivationScale(QuantConfig.ActivationScale.DYNAMIC)},
        };
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "synthetic outliers: K=%d, N=%d, %d outlier channels (20-100x median), "
                + "Student-t(4) tails, seed %d; 1024 calibration tokens (256 sampled), 512 held-out tokens%n", k, n, outliers, seed));
        b.append(String.format(Locale.ROOT, "| %-5s | %-31s | %-5s | %-10s | %-6s | %-12s | %-12s |%n",
                "bits", "method", "alpha", "threshold", "K'/K", "calib err", "held-out err"));
        b.append("|-------|---------------------------------|-------|------------|--------|--------------|--------------|\n");
        for (Precision p : new Precision[] {Precision.INT8, Precision.INT4}) {
            for (Object[] row : rows) {
                Result r = run((String) row[0], k, n, outliers, 1024, 512, (QuantConfig) row[1], p, seed);
                PrecisionSetting s = r.setting();
                b.append(String.format(Locale.ROOT, "| %-5s | %-31s | %-5s | %10.4g | %6.3f | %12.3e | %12.3e |%n", p,
                        r.label(), Double.isNaN(s.alpha()) ? "none" : String.format(Locale.ROOT, "%.2f", s.alpha()),
                        s.threshold(), s.plan().expansionRatio(), s.relativeError(), r.heldOutError()));
            }
        }
        return b.toString();
    }

    public static void main(String[] args) {
        int k = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 256;
        int outliers = args.length > 2 ? Integer.parseInt(args[2]) : 4;
        long seed = args.length > 3 ? Long.parseLong(args[3]) : 1;
        System.out.print(table(k, n, outliers, seed));
    }
}
