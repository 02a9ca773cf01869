package lowbit.calibrate;

/**
 * {@code y = x·Wᵀ (+ b)}: {@code x [tokens][in]}, {@code W [out][in]} (PyTorch layout), {@code b
 * [1][out]} or null. Backward: {@code dx = dy·W}, {@code dW = dyᵀ·x}, {@code db = Σ_tokens dy},
 * each computed only when that input needs a gradient (frozen weights cost no weight gradient).
 */
public final class Linear {
    private Linear() {}

    public static Var apply(Tape tape, Var x, Var w, Var bias) {
        int t = x.rows, in = x.cols, out = w.rows;
        if (w.cols != in) throw new IllegalArgumentException("x has " + in + " features, W is " + w.rows + "×" + w.cols);
        if (bias != null) bias.requireShape(1, out, "bias");
        double[] y = new double[t * out];
        tape.gemm(x.value, Gemm.transpose(w.value, out, in), y, t, out, in, false);
        if (bias != null) {
            for (int r = 0; r < t; r++) {
                for (int j = 0; j < out; j++) y[r * out + j] += bias.value[j];
            }
        }
        Var result = tape.result(y, t, out, x, w, bias);
        tape.onBackward(result, () -> {
            double[] dy = result.grad;
            if (x.requiresGrad) tape.gemm(dy, w.value, x.gradArray(), t, in, out, true);
            if (w.requiresGrad) tape.gemm(Gemm.transpose(dy, t, out), x.value, w.gradArray(), out, in, t, true);
            if (bias != null && bias.requiresGrad) {
                double[] db = bias.gradArray();
                for (int r = 0; r < t; r++) {
                    for (int j = 0; j < out; j++) db[j] += dy[r * out + j];
                }
            }
        });
        return result;
    }
}
