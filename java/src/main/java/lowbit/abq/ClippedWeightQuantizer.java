package lowbit.abq;

/**
 * Per-output-channel weight quantization with learned clipping (LWC): row r's range {@code [min_r,
 * max_r]} becomes {@code [σ(β_r)·min_r, σ(γ_r)·max_r]} before {@link Grid}'s float32 arithmetic
 * (asymmetric: {@code lo = min(0, σ(β)·min)}, {@code hi = max(0, σ(γ)·max)}, scale, zero point and
 * codes as in {@link WeightQuantizer}; symmetric: {@code amax = max(|lo|, |hi|)}). With every
 * factor 1 this is {@link WeightQuantizer#quantize} code for code. The factors come from {@link
 * AbqFold#clipFactors}; the codes equal the calibration's fake quantizer ({@code FakeQuant}) on
 * rows that hold both signs, up to float32 versus FP64 rounding. One difference remains in the
 * symmetric mode: the fake quantizer's grid has one more negative level ({@code −2^(b−1)}) that a
 * clipped weight may reach, where these codes stop at {@code −(2^(b−1) − 1)}.
 */
public final class ClippedWeightQuantizer {
    private ClippedWeightQuantizer() {}

    /**
     * Quantizes {@code w} ({@code n × k}, one output channel per row) with {@code quantizer} (per
     * channel, group 0), clipping row r by {@code factors[2r]} (max side) and {@code factors[2r+1]}
     * (min side), each in (0, 1]; {@code factors} null: no clipping.
     */
    public static IntCodes quantize(float[] w, int n, int k, WeightQuantizer quantizer, double[] factors) {
        if (quantizer.group() != 0) throw new IllegalArgumentException("learned clipping is per output channel; got " + quantizer);
        if (n <= 0 || k <= 0 || w.length != (long) n * k) {
            throw new IllegalArgumentException("weights must hold " + (long) n * k + " values for " + n + " x " + k + ", got " + w.length);
        }
        if (factors == null) return quantizer.quantize(w, n, k);
        if (factors.length != 2 * n) throw new IllegalArgumentException("clip factors: " + factors.length + " values for " + n + " channels (2 each)");
        for (int i = 0; i < factors.length; i++) {
            if (!(factors[i] > 0 && factors[i] <= 1)) throw new IllegalArgumentException("clip factor " + i + " is " + factors[i] + ", expected (0, 1]");
        }
        Grid.checkFinite(w, k, "weights");
        int qmax = quantizer.qmax();
        boolean asymmetric = quantizer.isAsymmetric();
        int[] codes = new int[n * k];
        float[] scales = new float[n];
        int[] zeros = asymmetric ? new int[n] : null;
        for (int r = 0; r < n; r++) {
            float min = Float.POSITIVE_INFINITY, max = Float.NEGATIVE_INFINITY;
            for (int c = r * k; c < (r + 1) * k; c++) {
                min = Math.min(min, w[c]);
                max = Math.max(max, w[c]);
            }
            float hi = Math.max(0f, (float) factors[2 * r] * max);
            float lo = Math.min(0f, (float) factors[2 * r + 1] * min);
            if (asymmetric) {
                float s = Grid.asymmetricScale(lo, hi, qmax);
                int z = Grid.zeroPoint(lo, s, qmax);
                for (int c = r * k; c < (r + 1) * k; c++) codes[c] = Grid.asymmetricCode(w[c], s, z, qmax);
                scales[r] = s;
                zeros[r] = z;
            } else {
                float s = Grid.symmetricScale(Math.max(-lo, hi), qmax);
                for (int c = r * k; c < (r + 1) * k; c++) codes[c] = Grid.symmetricCode(w[c], s, qmax);
                scales[r] = s;
            }
        }
        return new IntCodes(n, k, quantizer.planes(), !asymmetric, 0, codes, scales, zeros);
    }
}
