package lowbit.quant;

/**
 * The scalar arithmetic of symmetric quantization, written to match lowbit.h bit for bit:
 * {@code scale = amax / qmax} (1 when amax is 0) and {@code q = clamp(rint(x / scale), -qmax,
 * qmax)}, both in IEEE float32; rint rounds half to even.
 */
final class SymmetricQuant {
    private SymmetricQuant() {}

    static int qmax(int bits) {
        if (bits == 8) {
            return 127;
        }
        if (bits == 4) {
            return 7;
        }
        throw new IllegalArgumentException("integer quantization needs 4 or 8 bits, got " + bits);
    }

    /** Scale for a slot whose largest magnitude is {@code amax} (already clipped if clipping). */
    static float scale(float amax, int bits) {
        if (!(amax >= 0f) || Float.isInfinite(amax)) {
            throw new NonFiniteValueException("quantization amax must be finite and >= 0, got " + amax);
        }
        return amax == 0f ? 1f : amax / qmax(bits);
    }

    /** One value on the grid; {@code x / scale} is a float32 division, as in the native kernels. */
    static int quantize(float x, float scale, int qmax) {
        double r = Math.rint(x / scale);
        if (r > qmax) {
            return qmax;
        }
        if (r < -qmax) {
            return -qmax;
        }
        return (int) r;
    }

    /** Largest |x| over {@code data[from, to)}; throws on NaN/Inf, naming {@code what}. */
    static float absMax(float[] data, int from, int to, String what) {
        float m = 0f;
        for (int i = from; i < to; i++) {
            float v = data[i];
            if (!Float.isFinite(v)) {
                throw new NonFiniteValueException(what + " has a non-finite value " + v + " at index " + i);
            }
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }
}
