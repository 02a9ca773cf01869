package lowbit.calibrate;

/**
 * A learnable per-channel scale s for a linear layer's input (SmoothQuant/OmniQuant's LET scale,
 * FlatQuant's diagonal): the activation becomes {@code x ⊘ s} and the weight {@code W ⊙ s} (each
 * input column), so {@code (x ⊘ s)·(W ⊙ s)ᵀ = x·Wᵀ} before quantization. Init {@link #smoothQuant}.
 */
public final class ChannelScale {
    private final Param param;

    public ChannelScale(String name, double[] init) {
        for (double v : init) if (!(v > 0)) throw new IllegalArgumentException(name + ": scale " + v + " must be > 0");
        this.param = new Param(name, init, 1, init.length);
    }

    /**
     * SmoothQuant's init {@code s = xmax^α / wmax^(1−α)} per channel, from the activation's channel
     * absolute maxima and the weight columns' absolute maxima (over all layers reading the input);
     * clamped to {@code [1e-5, 1e5]}, 1 where a channel is all zero.
     */
    public static double[] smoothQuant(double[] actAbsMax, double[] weightAbsMax, double alpha) {
        if (actAbsMax.length != weightAbsMax.length) throw new IllegalArgumentException("channel counts differ: " + actAbsMax.length + " vs " + weightAbsMax.length);
        if (!(alpha >= 0 && alpha <= 1)) throw new IllegalArgumentException("alpha " + alpha + " must be in [0, 1]");
        double[] s = new double[actAbsMax.length];
        for (int i = 0; i < s.length; i++) {
            double v = Math.pow(actAbsMax[i], alpha) / Math.pow(weightAbsMax[i], 1 - alpha);
            s[i] = Double.isFinite(v) && v > 0 ? Math.min(1e5, Math.max(1e-5, v)) : 1.0;
        }
        return s;
    }

    public Param param() {
        return param;
    }

    public Var activations(Tape tape, Var x) {
        return MatrixOps.scaleColumns(tape, x, param.var(), true);
    }

    public Var weight(Tape tape, Var w) {
        return MatrixOps.scaleColumns(tape, w, param.var(), false);
    }
}
