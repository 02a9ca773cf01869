package lowbit.calibrate;

import java.util.ArrayList;
import java.util.List;

/**
 * Records the backward rules of the ops run on it, in order, and runs them in reverse from a scalar
 * loss (reverse-mode differentiation). One tape per forward pass; ops whose inputs need no
 * gradient record nothing. The tape also fixes the precision of the matrix products: FP32 (fast,
 * for calibration) or FP64 (gradient checks). Not thread-safe; ops parallelize internally.
 */
public final class Tape {
    private final boolean fp64;
    private final List<Runnable> rules = new ArrayList<>();
    private boolean done;

    private Tape(boolean fp64) {
        this.fp64 = fp64;
    }

    /** Matrix products in FP32 (element-wise math stays double). */
    public static Tape fp32() {
        return new Tape(false);
    }

    /** Everything in FP64. */
    public static Tape fp64() {
        return new Tape(true);
    }

    public boolean isFp64() {
        return fp64;
    }

    /**
     * Backpropagates from {@code loss} (a 1×1 result of this tape): adds d loss / d v to the
     * gradient of every {@link Var} that needs one. A tape runs backward once.
     */
    public void backward(Var loss) {
        if (done) throw new IllegalStateException("this tape has already run backward");
        if (loss.value.length != 1) throw new IllegalArgumentException("the loss must be 1×1, got " + loss.rows + "×" + loss.cols);
        done = true;
        if (!loss.requiresGrad) return;
        loss.gradArray()[0] += 1.0;
        for (int i = rules.size() - 1; i >= 0; i--) rules.get(i).run();
        rules.clear();
    }

    /** The result of an op: needs a gradient when any input does. */
    Var result(double[] value, int rows, int cols, Var... inputs) {
        boolean grad = false;
        for (Var v : inputs) grad |= v != null && v.requiresGrad;
        return new Var(value, rows, cols, grad);
    }

    /**
     * Records {@code rule} if {@code out} needs a gradient; during backward it runs only if a
     * gradient reached {@code out} (results the loss does not depend on are skipped).
     */
    void onBackward(Var out, Runnable rule) {
        if (done) throw new IllegalStateException("this tape has already run backward");
        if (out.requiresGrad) {
            rules.add(() -> {
                if (out.grad != null) rule.run();
            });
        }
    }

    void gemm(double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate) {
        Gemm.multiply(fp64, a, b, c, m, n, k, accumulate);
    }

    void gemmSerial(double[] a, double[] b, double[] c, int m, int n, int k, boolean accumulate) {
        Gemm.multiplySerial(fp64, a, b, c, m, n, k, accumulate);
    }
}
