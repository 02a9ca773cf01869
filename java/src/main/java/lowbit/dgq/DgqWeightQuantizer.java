package lowbit.dgq;

import java.util.Arrays;
import java.util.stream.IntStream;
import lowbit.model.FloatLinear;

/**
 * DGQ's two-phase grid search (the authors' {@code searchquant}), each phase minimizing the layer's
 * output error {@code Σ_t ‖x_t·(W − Ŵ)ᵀ‖²} on calibration activations {@code x} (weight MSE when no
 * tokens are given).
 *
 * <p><b>Phase 1 — group scales (FP).</b> For each row and group of G columns, 4-bit quantization with
 * clip ratio {@code r_i = 1.02 − (i+1)/n₁·0.22}, {@code i = 0..n₁−1} (n₁ = 20: 1.009 down to 0.80);
 * the error of the group's slice of the output, {@code Σ_t (x_t[g]·(w_g − ŵ_g))²}, picks the best
 * ratio per (row, group). Asymmetric: range {@code [min(0, r·min w), max(0, r·max w)]}, {@code S =
 * range/15}, {@code z = clamp(rint(−lo/S), 0, 15)}, {@code q = clamp(rint(w/S) + z, 0, 15)} (the
 * range includes 0 so that {@code z ∈ [0, 15]}). Symmetric: {@code S = r·max|w|/7}, {@code q =
 * clamp(rint(w/S), −8, 7)}.
 *
 * <p><b>Phase 2 — channel scale and integer group scales.</b> For each row, 80 candidates {@code
 * r_i = 1.02 − (i+1)/n₂·0.82} (1.010 down to 0.20): {@code s8 = r·max|w_row|/127}, per group
 * {@code S2 = clamp(rint(S/s8), 1, 255)}, codes re-quantized with the effective scale {@code
 * s8·S2} and the phase-1 zero point, restricted to {@code q ∈ [z − ⌊127/S2⌋, z + ⌊127/S2⌋]} (the
 * ±127 range rule, so {@code |W8| = |(q − z)·S2| ≤ 127}); the row's whole output error picks {@code
 * s8}. Ties keep the earlier (larger) candidate. Errors are computed in float32 matrix products
 * ({@link FloatLinear}) and summed in double.
 */
public final class DgqWeightQuantizer {
    private DgqWeightQuantizer() {}

    /** Phase 1 clip ratios: {@code 1.02 − (i+1)/count·0.22}. */
    public static double[] phase1Ratios(int count) {
        double[] r = new double[count];
        for (int i = 0; i < count; i++) r[i] = 1.02 - (i + 1) / (double) count * 0.22;
        return r;
    }

    /** Phase 2 channel-scale ratios: {@code 1.02 − (i+1)/count·0.82}. */
    public static double[] phase2Ratios(int count) {
        double[] r = new double[count];
        for (int i = 0; i < count; i++) r[i] = 1.02 - (i + 1) / (double) count * 0.82;
        return r;
    }

    /**
     * Quantizes {@code w} ({@code n × k}, row-major) with the config's group, format and grids,
     * measuring output error on {@code x} ({@code tokens × k}; {@code tokens = 0}: weight MSE).
     */
    public static DgqQuantizedWeights quantize(float[] w, int n, int k, float[] x, int tokens, DgqConfig cfg) {
        int gsz = cfg.group();
        if (n < 1 || k < 1 || w.length != (long) n * k) {
            throw new IllegalArgumentException("weights must hold " + n + " x " + k + " values, got " + w.length);
        }
        if (k % gsz != 0) throw new IllegalArgumentException("group size " + gsz + " does not divide K=" + k);
        if (tokens < 0 || (tokens > 0 && x.length < (long) tokens * k)) {
            throw new IllegalArgumentException("calibration activations must hold " + tokens + " x " + k + " values");
        }
        for (int i = 0; i < w.length; i++) {
            if (!Float.isFinite(w[i])) {
                throw new IllegalArgumentException("weight at row " + i / k + ", column " + i % k + " is not finite: " + w[i]);
            }
        }
        boolean asym = cfg.format() == WeightFormat.ASYMMETRIC_UINT4;
        int groups = k / gsz;

        // ---- phase 1: FP group scales and zero points ------------------------------------------
        float[][] xg = new float[groups][tokens * gsz];
        for (int g = 0; g < groups; g++) {
            for (int t = 0; t < tokens; t++) System.arraycopy(x, t * k + g * gsz, xg[g], t * gsz, gsz);
        }
        double[] groupScale = new double[n * groups];
        int[] zero = new int[n * groups];
        double[] bestGroupErr = new double[n * groups];
        Arrays.fill(bestGroupErr, Double.POSITIVE_INFINITY);
        float[][] diff = new float[groups][n * gsz];
        double[] candScale = new double[n * groups];
        int[] candZero = new int[n * groups];
        for (double r : phase1Ratios(cfg.phase1Candidates())) {
            IntStream.range(0, n).parallel().forEach(j -> {
                for (int g = 0; g < groups; g++) {
                    int base = j * k + g * gsz;
                    double lo = 0, hi = 0, amax = 0;
                    for (int c = 0; c < gsz; c++) {
                        double v = w[base + c];
                        lo = Math.min(lo, v);
                        hi = Math.max(hi, v);
                        amax = Math.max(amax, Math.abs(v));
                    }
                    double s;
                    int z = 0;
                    if (asym) {
                        s = (r * hi - r * lo) / 15;
                        if (!(s > 0)) s = 1;
                        z = (int) Math.max(0, Math.min(15, Math.rint(-r * lo / s)));
                    } else {
                        s = r * amax / 7;
                        if (!(s > 0)) s = 1;
                    }
                    candScale[j * groups + g] = s;
                    candZero[j * groups + g] = z;
                    for (int c = 0; c < gsz; c++) {
                        double v = w[base + c];
                        double q = asym ? Math.max(0, Math.min(15, Math.rint(v / s) + z)) : Math.max(-8, Math.min(7, Math.rint(v / s)));
                        diff[g][j * gsz + c] = (float) (v - (q - z) * s);
                    }
                }
            });
            for (int g = 0; g < groups; g++) {
                double[] err = rowErrors(diff[g], n, gsz, xg[g], tokens);
                for (int j = 0; j < n; j++) {
                    int i = j * groups + g;
                    if (err[j] < bestGroupErr[i]) {
                        bestGroupErr[i] = err[j];
                        groupScale[i] = candScale[i];
                        zero[i] = candZero[i];
                    }
                }
            }
        }

        // ---- phase 2: channel scale s8 and integer group scales S2 -----------------------------
        double[] rowMax = new double[n];
        for (int j = 0; j < n; j++) {
            for (int c = 0; c < k; c++) rowMax[j] = Math.max(rowMax[j], Math.abs(w[j * k + c]));
        }
        byte[] codes = new byte[n * k];
        int[] s2 = new int[n * groups];
        float[] s8 = new float[n];
        double[] bestRowErr = new double[n];
        Arrays.fill(bestRowErr, Double.POSITIVE_INFINITY);
        byte[] candCodes = new byte[n * k];
        int[] candS2 = new int[n * groups];
        float[] candS8 = new float[n];
        float[] rowDiff = new float[n * k];
        int qmin = asym ? 0 : -8, qmax = asym ? 15 : 7;
        for (double r : phase2Ratios(cfg.phase2Candidates())) {
            IntStream.range(0, n).parallel().forEach(j -> {
                float sc = rowMax[j] > 0 ? (float) (r * rowMax[j] / 127) : 1f;
                if (!(sc > 0)) sc = Float.MIN_NORMAL;
                candS8[j] = sc;
                for (int g = 0; g < groups; g++) {
                    int i = j * groups + g;
                    int sg = (int) Math.max(1, Math.min(255, Math.rint(groupScale[i] / sc)));
                    int z = asym ? zero[i] : 0;
                    int lim = 127 / sg;
                    int lo = Math.max(qmin, z - lim), hi = Math.min(qmax, z + lim);
                    double eff = (double) sc * sg;
                    candS2[i] = sg;
                    for (int c = g * gsz; c < (g + 1) * gsz; c++) {
                        double v = w[j * k + c];
                        int q = (int) Math.max(lo, Math.min(hi, Math.rint(v / eff) + z));
                        candCodes[j * k + c] = (byte) q;
                        rowDiff[j * k + c] = (float) (v - (double) (sc * ((q - z) * sg)));
                    }
                }
            });
            double[] err = rowErrors(rowDiff, n, k, x, tokens);
            for (int j = 0; j < n; j++) {
                if (err[j] < bestRowErr[j]) {
                    bestRowErr[j] = err[j];
                    System.arraycopy(candCodes, j * k, codes, j * k, k);
                    System.arraycopy(candS2, j * groups, s2, j * groups, groups);
                    s8[j] = candS8[j];
                }
            }
        }
        return new DgqQuantizedWeights(n, k, gsz, cfg.format(), codes, s2, asym ? zero : null, s8);
    }

    /** Per row j of {@code d} ({@code n × len}): {@code Σ_t (x_t·d_j)²}, or {@code Σ d_j²} without tokens. */
    private static double[] rowErrors(float[] d, int n, int len, float[] x, int tokens) {
        double[] err = new double[n];
        if (tokens == 0) {
            for (int j = 0; j < n; j++) {
                for (int c = 0; c < len; c++) err[j] += (double) d[j * len + c] * d[j * len + c];
            }
            return err;
        }
        float[] y = new float[tokens * n];
        new FloatLinear(d, null, n, len).forward(x, tokens, y);
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < n; j++) err[j] += (double) y[t * n + j] * y[t * n + j];
        }
        return err;
    }
}
