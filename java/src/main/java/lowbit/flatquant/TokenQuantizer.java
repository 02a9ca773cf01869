package lowbit.flatquant;

/**
 * FlatQuant's activation quantizer at inference: per token, symmetric, dynamic, with the learned
 * clip pair ({@code σ(γ)}, {@code σ(β)}) shared by all tokens of the layer's input. For a token with
 * extremes {@code min ≤ max}: {@code hi = σ(γ)·max}, {@code lo = σ(β)·min}, {@code amax = max(|lo|,
 * |hi|)}, {@code scale = amax / qmax} (1 when amax is 0), then lowbit.h's {@code q = clamp(rint(x /
 * scale), −qmax, qmax)} — all in float32, so the native {@code lowbit_quantize} with these scales
 * given ({@code scales_given}) produces the same codes bit for bit, and so does the fused {@code
 * lowbit_kron_quantize} (which computes the scale the same way from the transformed row).
 *
 * <p>The calibration's fake quantizer ({@link lowbit.calibrate.FakeQuant}) has the same scale but
 * the grid {@code −2^(b−1) .. 2^(b−1)−1}; lowbit.h's activation grid is symmetric ({@code ±qmax}),
 * so the one level {@code −2^(b−1)} is unused here. It is reached only by values beyond {@code
 * 1.07·amax} (INT4), i.e. clipped negative values when the learned factor is below 0.93.
 */
public final class TokenQuantizer {
    private final int bits;
    private final int qmax;
    private final float clipHi;
    private final float clipLo;

    /** {@code bits} 4 or 8; clip factors in (0, 1] (1, 1 = no clipping). */
    public TokenQuantizer(int bits, double clipHi, double clipLo) {
        if (bits != 4 && bits != 8) throw new IllegalArgumentException("activations are quantized to 4 or 8 bits, got " + bits);
        if (!(clipHi > 0 && clipHi <= 1) || !(clipLo > 0 && clipLo <= 1)) {
            throw new IllegalArgumentException("activation clip factors must be in (0, 1], got " + clipHi + " and " + clipLo);
        }
        this.bits = bits;
        this.qmax = (1 << (bits - 1)) - 1;
        this.clipHi = (float) clipHi;
        this.clipLo = (float) clipLo;
    }

    public int bits() {
        return bits;
    }

    /** {@code σ(γ)} as the layer uses it (float32): the factor of a token's maximum. */
    public float clipHi() {
        return clipHi;
    }

    /** {@code σ(β)} as the layer uses it (float32): the factor of a token's minimum. */
    public float clipLo() {
        return clipLo;
    }

    /** One scale per token of {@code x} ({@code tokens × k}); a non-finite input throws, naming token and channel. */
    public float[] scales(float[] x, int tokens, int k) {
        float[] s = new float[tokens];
        for (int t = 0; t < tokens; t++) {
            float min = Float.POSITIVE_INFINITY, max = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < k; c++) {
                float v = x[t * k + c];
                if (!Float.isFinite(v)) {
                    throw new IllegalArgumentException("FlatQuant layer input " + v + " at token " + t + ", channel " + c + " is not finite");
                }
                min = Math.min(min, v);
                max = Math.max(max, v);
            }
            float amax = Math.max(Math.abs(clipLo * min), Math.abs(clipHi * max));
            s[t] = amax == 0f ? 1f : amax / qmax;
        }
        return s;
    }

    /** The codes of {@code x} under {@code scales} (Java reference of lowbit_quantize with given scales). */
    public int[] codes(float[] x, int tokens, int k, float[] scales) {
        int[] q = new int[tokens * k];
        for (int t = 0; t < tokens; t++) {
            for (int c = 0; c < k; c++) {
                double r = Math.rint(x[t * k + c] / scales[t]); // float32 division, as lowbit.h
                q[t * k + c] = (int) Math.max(-qmax, Math.min(qmax, r));
            }
        }
        return q;
    }

    @Override
    public String toString() {
        return "A" + bits + " per-token symmetric, clip " + clipHi + "/" + clipLo;
    }
}
