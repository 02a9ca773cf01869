package lowbit.calibrate;

import java.util.Arrays;

/**
 * Learnable clipping of a quantizer's range (LWC of OmniQuant / ABQ-LLM, FlatQuant's weight and
 * activation clipping): per scale group g, the range {@code [min, max]} becomes {@code [σ(β_g)·min,
 * σ(γ_g)·max]} with logits γ (column 0) and β (column 1) of a {@code count × 2} parameter; {@code
 * count} is the quantizer's group count (one pair per output channel or group) or 1 (one pair shared
 * by every token, as FlatQuant's activation clipping). Initial logit 4.0 (σ = 0.982) as the authors.
 */
public final class ClipFactors {
    public static final double DEFAULT_INIT = 4.0;
    private final Param param;

    public ClipFactors(String name, int count, double initLogit) {
        if (count < 1) throw new IllegalArgumentException("clip factor count " + count + " must be >= 1");
        double[] init = new double[count * 2];
        Arrays.fill(init, initLogit);
        this.param = new Param(name, init, count, 2);
    }

    public Param param() {
        return param;
    }

    public int count() {
        return param.var().rows;
    }

    /** The current factors σ(γ_g) (column 0) and σ(β_g) (column 1), a copy. */
    public double[] factors() {
        double[] v = param.values();
        for (int i = 0; i < v.length; i++) v[i] = sigmoid(v[i]);
        return v;
    }

    static double sigmoid(double x) {
        return 1.0 / (1.0 + Math.exp(-x));
    }
}
