package lowbit.quant;

import java.util.ArrayList;
import java.util.List;

/**
 * SmoothQuant-style channel smoothing: move activation outliers into the weights before
 * quantizing.
 *
 * <p><b>Factors.</b> For input channel j with calibrated activation max {@code m_j} and weight max
 * {@code w_j = max |W[:,j]|} (over every linear layer that consumes the same activation): {@code
 * s_j = max(m_j^alpha / w_j^(1-alpha), 1e-5)}, or 1 when {@code m_j} or {@code w_j} is 0. Then
 * {@code (X diag(1/s)) (W diag(s))ᵀ = X Wᵀ}: the activation channel shrinks by {@code s_j}, the
 * weight column grows by it.
 *
 * <p><b>Folding.</b> When the activation is produced by a norm ({@code y = norm(x) * g + b}, RMSNorm
 * or LayerNorm) the division by {@code s} folds into the norm: {@code g' = g / s}, {@code b' = b /
 * s}; when it is produced by a linear layer ({@code y = x Pᵀ + c}), into that layer's output rows:
 * {@code P'[j,:] = P[j,:] / s_j}, {@code c'_j = c_j / s_j}. The consumers get {@code W'[:,j] = W[:,j]
 * * s_j}. The folded model computes the same function (exactly in real arithmetic; tested in FP64).
 * Otherwise apply {@code s} as an explicit scale with {@link FlattenPlan#withInputScale}.
 */
public final class Smoothing {
    private Smoothing() {}

    /** Arrays after folding: the producer's (norm or linear) parameters and every consumer's weights. */
    public record Folded(double[] producerWeight, double[] producerBias, List<double[]> consumerWeights) {}

    /**
     * Smoothing factors {@code s[K]} for activation maxima {@code activationAbsMax[K]} and the
     * weights ({@code N_i x K}, row-major) of every layer that reads this activation.
     */
    public static double[] factors(float[] activationAbsMax, List<float[]> consumerWeights, double alpha) {
        if (!(alpha >= 0 && alpha <= 1)) {
            throw new IllegalArgumentException("smoothing alpha must be in [0, 1], got " + alpha);
        }
        int k = activationAbsMax.length;
        if (consumerWeights.isEmpty()) {
            throw new IllegalArgumentException("smoothing needs the weights of at least one consuming layer");
        }
        double[] wmax = new double[k];
        for (int i = 0; i < consumerWeights.size(); i++) {
            float[] w = consumerWeights.get(i);
            if (w.length == 0 || w.length % k != 0) {
                throw new ShapeMismatchException("consumer " + i + ": weight length " + w.length
                        + " is not a positive multiple of " + k + " input channels");
            }
            for (int p = 0; p < w.length; p++) {
                if (!Float.isFinite(w[p])) {
                    throw new NonFiniteValueException("consumer " + i + ": weight " + w[p] + " at row " + (p / k)
                            + ", column " + (p % k) + " is not finite");
                }
                wmax[p % k] = Math.max(wmax[p % k], Math.abs(w[p]));
            }
        }
        double[] s = new double[k];
        for (int j = 0; j < k; j++) {
            double m = activationAbsMax[j];
            if (!Double.isFinite(m) || m < 0) {
                throw new NonFiniteValueException("activation max of channel " + j + " must be finite and >= 0, got " + m);
            }
            s[j] = (m == 0 || wmax[j] == 0) ? 1.0 : Math.max(Math.pow(m, alpha) / Math.pow(wmax[j], 1 - alpha), 1e-5);
        }
        return s;
    }

    /**
     * Folds {@code s} into a norm's weight {@code g[K]} and optional bias {@code b[K]} (null for
     * RMSNorm), and into the consumers' weights ({@code N_i x K}). Inputs are not modified.
     */
    public static Folded foldIntoNorm(double[] normWeight, double[] normBias, List<double[]> consumerWeights, double[] s) {
        int k = s.length;
        checkScale(s);
        if (normWeight.length != k || (normBias != null && normBias.length != k)) {
            throw new ShapeMismatchException("norm weight/bias have " + normWeight.length + "/"
                    + (normBias == null ? "-" : normBias.length) + " values for " + k + " smoothing factors");
        }
        double[] g = new double[k];
        double[] b = normBias == null ? null : new double[k];
        for (int j = 0; j < k; j++) {
            g[j] = normWeight[j] / s[j];
            if (b != null) {
                b[j] = normBias[j] / s[j];
            }
        }
        return new Folded(g, b, scaleColumns(consumerWeights, s));
    }

    /**
     * Folds {@code s} into a producing linear layer ({@code K x Kin} weights {@code P}, optional
     * bias {@code c[K]}) whose output is the smoothed activation, and into the consumers.
     */
    public static Folded foldIntoLinear(double[] producerWeight, int producerInFeatures, double[] producerBias,
                                        List<double[]> consumerWeights, double[] s) {
        int k = s.length;
        checkScale(s);
        if (producerWeight.length != (long) k * producerInFeatures || (producerBias != null && producerBias.length != k)) {
            throw new ShapeMismatchException("producer weights must be " + k + " x " + producerInFeatures + " (bias " + k
                    + "), got " + producerWeight.length + " values" + (producerBias == null ? "" : " and bias " + producerBias.length));
        }
        double[] p = new double[producerWeight.length];
        for (int j = 0; j < k; j++) {
            for (int c = 0; c < producerInFeatures; c++) {
                p[j * producerInFeatures + c] = producerWeight[j * producerInFeatures + c] / s[j];
            }
        }
        double[] bias = null;
        if (producerBias != null) {
            bias = new double[k];
            for (int j = 0; j < k; j++) {
                bias[j] = producerBias[j] / s[j];
            }
        }
        return new Folded(p, bias, scaleColumns(consumerWeights, s));
    }

    private static List<double[]> scaleColumns(List<double[]> consumers, double[] s) {
        int k = s.length;
        List<double[]> out = new ArrayList<>();
        for (int i = 0; i < consumers.size(); i++) {
            double[] w = consumers.get(i);
            if (w.length == 0 || w.length % k != 0) {
                throw new ShapeMismatchException("consumer " + i + ": weight length " + w.length
                        + " is not a positive multiple of " + k + " input channels");
            }
            double[] o = new double[w.length];
            for (int p = 0; p < w.length; p++) {
                o[p] = w[p] * s[p % k];
            }
            out.add(o);
        }
        return out;
    }

    private static void checkScale(double[] s) {
        for (int j = 0; j < s.length; j++) {
            if (!(s[j] > 0) || Double.isInfinite(s[j])) {
                throw new IllegalArgumentException("smoothing factor of channel " + j + " must be finite and > 0, got " + s[j]);
            }
        }
    }
}
