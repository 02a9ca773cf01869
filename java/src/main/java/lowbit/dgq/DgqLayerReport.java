package lowbit.dgq;

import lowbit.model.LinearOp;
import lowbit.quant.Precision;
import lowbit.quant.QuantizationReport;

/**
 * One DGQ layer's line for the bit-width policy's report: method "DGQ", group size, format,
 * activation mode and the relative output error {@code Σ(y − y_fp)² / Σ(y_fp − b)²} on calibration
 * tokens.
 */
public record DgqLayerReport(String layer, WeightFormat format, ActivationMode activations, int group, int inFeatures,
                             int outFeatures, double relativeError) {
    public String method() {
        return "DGQ";
    }

    /**
     * The row in {@link QuantizationReport}'s format: method {@code "DGQ"} and the group size G in
     * their fields; the precision is INT8 (the GEMM runs on INT8 operands, as the W4A8 baseline's
     * rows say), threshold and alpha are NaN (DGQ has neither).
     */
    public QuantizationReport.Row toRow() {
        return new QuantizationReport.Row(layer, Precision.INT8, inFeatures, inFeatures, outFeatures, Double.NaN, Double.NaN,
                relativeError, 2L * outFeatures * inFeatures, method(), group);
    }

    /** Measures {@code q} against the FP layer {@code fp} on {@code tokens} rows of {@code x}. */
    public static DgqLayerReport measure(String layer, LinearOp fp, float[] bias, DgqLinear q, float[] x, int tokens) {
        return new DgqLayerReport(layer, q.weights().format(), q.activationMode(), q.weights().group(), q.inFeatures(),
                q.outFeatures(),
                relativeError(fp, bias, q, x, tokens));
    }

    /** {@code Σ(y_q − y_fp)² / Σ(y_fp − b)²} over {@code tokens} rows of {@code x}. */
    public static double relativeError(LinearOp fp, float[] bias, LinearOp q, float[] x, int tokens) {
        int n = fp.outFeatures();
        float[] ref = new float[tokens * n];
        float[] got = new float[tokens * n];
        fp.forward(x, tokens, ref);
        q.forward(x, tokens, got);
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            double b = bias == null ? 0 : bias[i % n];
            double d = (double) got[i] - ref[i];
            num += d * d;
            den += (ref[i] - b) * (ref[i] - b);
        }
        return den == 0 ? (num == 0 ? 0 : Double.POSITIVE_INFINITY) : num / den;
    }
}
