package lowbit.abq;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import lowbit.Context;

/**
 * Measures one layer's {@link LayerWidthFigures}: for every candidate width, the relative output
 * error of the layer <b>as {@link AbqLinear} runs it after round to nearest</b> (the width's
 * {@link AbqWidth#weightQuantizer} codes uploaded, per-token activation quantization and the
 * bit-plane GEMM on the context; no calibration) against the FP64 product {@code x·Wᵀ} on the
 * calibration activations, and the GEMM's time for the layer's (N, K) at each timing M from a
 * {@link GemmTimer}. The bias is left out of both sides (it adds the same to each). The two can
 * run apart ({@link #errors}, {@link #times}): a pipeline measures every layer's errors first and
 * then the times, so that the clock does not run while the JIT compiler and the reference products
 * still occupy the cores.
 */
public final class WidthMeasurement {
    private WidthMeasurement() {}

    /**
     * Both measurements for one layer ({@link #errors}, then {@link #times}).
     *
     * @param w the FP weight, {@code n × k} (one output channel per row)
     * @param x calibration activations, {@code tokens × k}
     */
    public static LayerWidthFigures measure(Context ctx, GemmTimer timer, String layer, float[] w, int n, int k, float[] x, int tokens,
                                            List<AbqWidth> candidates, List<Integer> timingTokens) {
        return times(layer, n, k, candidates, errors(ctx, layer, w, n, k, x, tokens, candidates), timer, timingTokens);
    }

    /** Per candidate, the relative output error of the round-to-nearest {@link AbqLinear} on {@code x} against FP64. */
    public static double[] errors(Context ctx, String layer, float[] w, int n, int k, float[] x, int tokens, List<AbqWidth> candidates) {
        Objects.requireNonNull(ctx, "ctx");
        Objects.requireNonNull(layer, "layer");
        if (n < 1 || k < 1 || w == null || w.length != (long) n * k) {
            throw new IllegalArgumentException(layer + ": weights must hold " + (long) n * k + " values for " + n + " x " + k);
        }
        if (tokens < 1 || x == null || x.length < (long) tokens * k) {
            throw new IllegalArgumentException(layer + ": the error is measured on calibration activations; need " + tokens + " x " + k
                    + " values (at least one token), got " + (x == null ? "none" : x.length + ""));
        }
        if (candidates == null || candidates.isEmpty()) throw new IllegalArgumentException(layer + ": no candidate widths");
        double[] ref = reference(w, n, k, x, tokens);
        double[] e = new double[candidates.size()];
        float[] y = new float[tokens * n];
        for (int i = 0; i < e.length; i++) {
            AbqWidth width = candidates.get(i);
            try (AbqLinear q = AbqLinear.create(ctx, w, null, n, k, width.weightQuantizer(), width.activationQuantizer())) {
                q.forward(x, tokens, y);
            }
            e[i] = relativeError(ref, y);
        }
        return e;
    }

    /** The figures of a layer from its measured {@code errors} (one per candidate) and {@code timer}'s times for its (N, K). */
    public static LayerWidthFigures times(String layer, int n, int k, List<AbqWidth> candidates, double[] errors, GemmTimer timer,
                                          List<Integer> timingTokens) {
        Objects.requireNonNull(timer, "timer");
        if (candidates == null || errors == null || errors.length != candidates.size()) {
            throw new IllegalArgumentException(layer + ": one measured error per candidate width is required");
        }
        if (timingTokens == null || timingTokens.isEmpty()) throw new IllegalArgumentException(layer + ": no timing M");
        double[][] t = timer.seconds(n, k, candidates, timingTokens);
        List<LayerWidthFigures.Candidate> out = new ArrayList<>();
        for (int i = 0; i < candidates.size(); i++) {
            List<Double> seconds = new ArrayList<>();
            for (double s : t[i]) seconds.add(s);
            out.add(new LayerWidthFigures.Candidate(candidates.get(i), errors[i], seconds));
        }
        return new LayerWidthFigures(layer, n, k, out);
    }

    /** {@code x·Wᵀ} in FP64 ({@code tokens × n}). */
    static double[] reference(float[] w, int n, int k, float[] x, int tokens) {
        double[] y = new double[tokens * n];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int c = 0; c < k; c++) s += (double) x[t * k + c] * w[j * k + c];
                y[t * n + j] = s;
            }
        }
        return y;
    }

    /** {@code Σ (got − ref)² / Σ ref²}; 0 when both are all zero, +∞ when only the reference is. */
    static double relativeError(double[] ref, float[] got) {
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = got[i] - ref[i];
            num += d * d;
            den += ref[i] * ref[i];
        }
        return den == 0 ? (num == 0 ? 0 : Double.POSITIVE_INFINITY) : num / den;
    }
}
