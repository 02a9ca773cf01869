package lowbit.calibrate;

import java.util.Arrays;

/**
 * A learnable matrix with a name (unique within a block's checkpoint): its {@link #var} is what
 * ops read and where gradients accumulate across one step; the optimizer updates it in place.
 */
public final class Param {
    private final String name;
    private final Var var;

    public Param(String name, double[] init, int rows, int cols) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("a parameter needs a name");
        for (double v : init) if (!Double.isFinite(v)) throw new IllegalArgumentException(name + ": initial value " + v + " is not finite");
        this.name = name;
        this.var = new Var(init.clone(), rows, cols, true);
    }

    public String name() {
        return name;
    }

    /** The graph node (requires a gradient). */
    public Var var() {
        return var;
    }

    /** A copy of the values. */
    public double[] values() {
        return var.value.clone();
    }

    /** Overwrites the values (e.g. from a checkpoint); same length. */
    public void set(double[] values) {
        if (values.length != var.value.length) throw new IllegalArgumentException(name + " has " + var.value.length + " values, got " + values.length);
        System.arraycopy(values, 0, var.value, 0, values.length);
    }

    /** A copy of the gradient accumulated since the last {@link #zeroGrad}. */
    public double[] gradient() {
        return var.gradArray().clone();
    }

    public void zeroGrad() {
        var.zeroGrad();
    }

    @Override
    public String toString() {
        return name + Arrays.toString(new int[] {var.rows, var.cols});
    }
}
