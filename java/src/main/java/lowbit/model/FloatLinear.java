package lowbit.model;

/**
 * The FP32 reference {@link LinearOp}: a row-major {@code [outFeatures][inFeatures]} weight (the
 * PyTorch layout) and an optional bias, multiplied by the blocked multi-threaded {@link MatMul}
 * kernel.
 */
public final class FloatLinear implements LinearOp {
    private final float[] weight;
    private final float[] bias;
    private final int in;
    private final int out;

    /** Wraps (does not copy) {@code weight} of {@code out × in} values and {@code bias} (null or {@code out} values). */
    public FloatLinear(float[] weight, float[] bias, int out, int in) {
        if (weight.length != (long) out * in) {
            throw new IllegalArgumentException("weight has " + weight.length + " values, expected " + out + " × " + in);
        }
        if (bias != null && bias.length != out) throw new IllegalArgumentException("bias has " + bias.length + " values, expected " + out);
        this.weight = weight;
        this.bias = bias;
        this.in = in;
        this.out = out;
    }

    @Override
    public int inFeatures() {
        return in;
    }

    @Override
    public int outFeatures() {
        return out;
    }

    /** The weight, row-major {@code [outFeatures][inFeatures]} (the live array: do not modify). */
    public float[] weight() {
        return weight;
    }

    /** The bias, or null. */
    public float[] bias() {
        return bias;
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        if (x.length < (long) tokens * in || y.length < (long) tokens * out) {
            throw new IllegalArgumentException("x needs " + tokens * in + " and y " + tokens * out + " values for " + tokens + " tokens");
        }
        MatMul.multiply(weight, bias, out, in, x, tokens, y);
    }
}
