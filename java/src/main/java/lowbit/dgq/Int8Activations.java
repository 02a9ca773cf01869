package lowbit.dgq;

/**
 * Java simulation of {@code lowbit_quantize} at 8 bits, bit for bit ({@code lowbit.h}): {@code scale
 * = amax / 127} in float32 (1 when that is 0), {@code q = clamp(rint(x / scale), −127, 127)} with the
 * division in float32 and rint rounding half to even.
 */
final class Int8Activations {
    private Int8Activations() {}

    /** Quantized rows and their scales (1 or {@code tokens} of them). */
    record Quantized(byte[] q, float[] scales) {}

    static float scale(float amax) {
        float s = amax / 127f;
        return s == 0f ? 1f : s;
    }

    static byte quantize(float x, float scale) {
        double r = Math.rint(x / scale);
        return (byte) Math.max(-127, Math.min(127, (int) r));
    }

    /** Dynamic per-token scales. */
    static Quantized perToken(float[] x, int tokens, int k) {
        byte[] q = new byte[tokens * k];
        float[] scales = new float[tokens];
        for (int t = 0; t < tokens; t++) {
            float amax = 0f;
            for (int j = 0; j < k; j++) amax = Math.max(amax, Math.abs(x[t * k + j]));
            float s = scale(amax);
            scales[t] = s;
            for (int j = 0; j < k; j++) q[t * k + j] = quantize(x[t * k + j], s);
        }
        return new Quantized(q, scales);
    }

    /** One given (static) scale for the tensor. */
    static Quantized perTensor(float[] x, int tokens, int k, float scale) {
        byte[] q = new byte[tokens * k];
        for (int i = 0; i < tokens * k; i++) q[i] = quantize(x[i], scale);
        return new Quantized(q, new float[] {scale});
    }
}
