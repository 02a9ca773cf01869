package lowbit.abq;

/**
 * The float32 arithmetic of one quantization slot (a token row, an output channel, a group),
 * identical to {@code lowbit_bitplane_quantize} in {@code lowbit.h} so that Java and the native
 * packers produce the same codes bit for bit. rint = round half to even.
 *
 * <ul>
 *   <li>asymmetric, codes {@code 0..qmax}: {@code lo = min(0, min x)}, {@code hi = max(0, max x)},
 *       {@code scale = (hi − lo)/qmax} (1 when 0, {@code Float.MAX_VALUE} when it overflows), {@code
 *       z = clamp(rint(−lo/scale), 0, qmax)}, {@code q = clamp(rint(x/scale) + z, 0, qmax)};
 *   <li>symmetric, codes {@code −qmax..qmax}: {@code scale = amax/qmax} (1 when 0), {@code q =
 *       clamp(rint(x/scale), −qmax, qmax)}.
 * </ul>
 */
final class Grid {
    private Grid() {}

    static float asymmetricScale(float lo, float hi, int qmax) {
        float s = (hi - lo) / (float) qmax;
        if (s == 0f) {
            return 1f;
        }
        return s <= Float.MAX_VALUE ? s : Float.MAX_VALUE;
    }

    static int zeroPoint(float lo, float scale, int qmax) {
        float z = (float) Math.rint(-lo / scale);
        return (int) Math.min(Math.max(z, 0f), (float) qmax);
    }

    static int asymmetricCode(float x, float scale, int z, int qmax) {
        float t = (float) Math.rint(x / scale);
        t = Math.min(Math.max(t, -512f), 512f);
        return Math.min(Math.max((int) t + z, 0), qmax);
    }

    static float symmetricScale(float amax, int qmax) {
        float s = amax / (float) qmax;
        return s == 0f ? 1f : s;
    }

    static int symmetricCode(float x, float scale, int qmax) {
        float t = (float) Math.rint(x / scale);
        return (int) Math.min(Math.max(t, (float) -qmax), (float) qmax);
    }

    /**
     * Quantizes the slot {@code x[off .. off+len)} into {@code codes} at the same positions and writes
     * its scale (and zero point when asymmetric) at index {@code slot}. {@code x} must be finite.
     */
    static void quantizeSlot(float[] x, int off, int len, boolean asymmetric, int qmax, int[] codes, float[] scales,
                             int[] zeros, int slot) {
        if (asymmetric) {
            float lo = 0f, hi = 0f;
            for (int i = off; i < off + len; i++) {
                lo = x[i] < lo ? x[i] : lo;
                hi = x[i] > hi ? x[i] : hi;
            }
            float s = asymmetricScale(lo, hi, qmax);
            int z = zeroPoint(lo, s, qmax);
            for (int i = off; i < off + len; i++) {
                codes[i] = asymmetricCode(x[i], s, z, qmax);
            }
            scales[slot] = s;
            zeros[slot] = z;
        } else {
            float amax = 0f;
            for (int i = off; i < off + len; i++) {
                float a = Math.abs(x[i]);
                amax = a > amax ? a : amax;
            }
            float s = symmetricScale(amax, qmax);
            for (int i = off; i < off + len; i++) {
                codes[i] = symmetricCode(x[i], s, qmax);
            }
            scales[slot] = s;
        }
    }

    static void checkFinite(float[] x, int cols, String what) {
        for (int i = 0; i < x.length; i++) {
            if (!Float.isFinite(x[i])) {
                throw new IllegalArgumentException(what + " has a non-finite value (" + x[i] + ") at row " + i / cols
                        + ", column " + i % cols);
            }
        }
    }
}
