package lowbit.calibrate;

import java.util.Arrays;

/**
 * ABQ-LLM's compensation vectors: the weight becomes {@code W + a·bᵀ} before quantization, {@code a
 * [out][1]} initialised to 0 and {@code b [1][in]} to 1, so training starts from W itself.
 */
public final class LowRankCompensation {
    private final Param a;
    private final Param b;

    public LowRankCompensation(String name, int out, int in) {
        if (out < 1 || in < 1) throw new IllegalArgumentException("bad weight shape " + out + "×" + in);
        double[] ones = new double[in];
        Arrays.fill(ones, 1.0);
        this.a = new Param(name + ".a", new double[out], out, 1);
        this.b = new Param(name + ".b", ones, 1, in);
    }

    public Param left() {
        return a;
    }

    public Param right() {
        return b;
    }

    public Var apply(Tape tape, Var w) {
        return MatrixOps.addOuter(tape, w, a.var(), b.var());
    }
}
