package lowbit.quant;

/**
 * The best configuration threshold search found for one layer at one precision.
 *
 * @param precision INT4, INT8 or FP16 (FP16: not quantized, identity plan, error 0 by definition)
 * @param alpha the SmoothQuant alpha, or NaN for no smoothing
 * @param threshold the flatten threshold T (the largest channel max when nothing is split; NaN for
 *     FP16)
 * @param plan the flatten plan (carrying the explicit smoothing scale, if any)
 * @param relativeError relative output MSE on the calibration sample: {@code ||Y_q - Y||² /
 *     ||Y||²}, Y the FP64 product without bias
 */
public record PrecisionSetting(Precision precision, double alpha, double threshold, FlattenPlan plan,
                               double relativeError, float[] clipRatios) {

    /** K', the GEMM depth this setting runs at. */
    public int expandedFeatures() {
        return plan.expandedFeatures();
    }

    @Override
    public float[] clipRatios() {
        return clipRatios.clone();
    }
}
