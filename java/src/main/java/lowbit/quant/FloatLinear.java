package lowbit.quant;

import lowbit.model.LinearOp;

/** An unquantized layer (the policy's FP16 fallback keeps the model's weights): y = x Wᵀ + b. */
final class FloatLinear implements LinearOp {
    private final float[] weights;
    private final float[] bias;
    private final int outFeatures;
    private final int inFeatures;

    FloatLinear(float[] weights, float[] bias, int outFeatures, int inFeatures) {
        if (weights.length != (long) outFeatures * inFeatures) {
            throw new ShapeMismatchException("weights must be " + outFeatures + " x " + inFeatures + ", got " + weights.length);
        }
        this.weights = weights;
        this.bias = bias;
        this.outFeatures = outFeatures;
        this.inFeatures = inFeatures;
    }

    @Override
    public int inFeatures() {
        return inFeatures;
    }

    @Override
    public int outFeatures() {
        return outFeatures;
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        if (x.length < (long) tokens * inFeatures || y.length < (long) tokens * outFeatures) {
            throw new ShapeMismatchException("forward of " + tokens + " tokens: x or y too short");
        }
        for (int t = 0; t < tokens; t++) {
            for (int n = 0; n < outFeatures; n++) {
                double acc = bias == null ? 0 : bias[n];
                for (int j = 0; j < inFeatures; j++) {
                    acc += (double) x[t * inFeatures + j] * weights[n * inFeatures + j];
                }
                y[t * outFeatures + n] = (float) acc;
            }
        }
    }
}
