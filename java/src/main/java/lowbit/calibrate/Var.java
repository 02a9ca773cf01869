package lowbit.calibrate;

/**
 * A node of the differentiable graph: a row-major {@code rows × cols} matrix of {@code double}
 * values and, when it needs a gradient, the gradient of the loss with respect to it (allocated on
 * first use, accumulated by the backward rules). Constants ({@link #constant}) get no gradient;
 * learnable values live in {@link Param}s; every op's result needs a gradient when one of its
 * inputs does.
 */
public final class Var {
    final int rows;
    final int cols;
    final double[] value;
    final boolean requiresGrad;
    double[] grad;

    Var(double[] value, int rows, int cols, boolean requiresGrad) {
        if (rows < 0 || cols < 0 || (long) rows * cols != value.length) {
            throw new IllegalArgumentException("a " + rows + "×" + cols + " matrix needs " + (long) rows * cols
                    + " values, got " + value.length);
        }
        this.rows = rows;
        this.cols = cols;
        this.value = value;
        this.requiresGrad = requiresGrad;
    }

    /** A constant (no gradient) wrapping {@code value} without copying. */
    public static Var constant(double[] value, int rows, int cols) {
        return new Var(value, rows, cols, false);
    }

    /** A constant holding {@code value} converted to double. */
    public static Var constant(float[] value, int rows, int cols) {
        double[] d = new double[value.length];
        for (int i = 0; i < d.length; i++) d[i] = value[i];
        return new Var(d, rows, cols, false);
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    /** The values (the live array: ops read it, callers must not change it while a tape uses it). */
    public double[] value() {
        return value;
    }

    /** The accumulated gradient (zeros if none has arrived), or null for a constant. */
    public double[] grad() {
        return requiresGrad ? gradArray() : null;
    }

    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** The single value of a 1×1 result (a loss). */
    public double scalar() {
        if (value.length != 1) throw new IllegalStateException("not a scalar: " + rows + "×" + cols);
        return value[0];
    }

    double[] gradArray() {
        if (grad == null) grad = new double[value.length];
        return grad;
    }

    void zeroGrad() {
        if (grad != null) java.util.Arrays.fill(grad, 0.0);
    }

    void requireShape(int r, int c, String what) {
        if (rows != r || cols != c) throw new IllegalArgumentException(what + " is " + rows + "×" + cols + ", expected " + r + "×" + c);
    }
}
