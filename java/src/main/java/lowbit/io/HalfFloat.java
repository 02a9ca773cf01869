package lowbit.io;

/** Conversions of IEEE half precision (FP16) and bfloat16 bit patterns to float. */
final class HalfFloat {
    private HalfFloat() {}

    /** The float value of an FP16 bit pattern held in the low 16 bits of {@code bits}. */
    static float fp16ToFloat(int bits) {
        int sign = (bits & 0x8000) << 16;
        int exponent = (bits >>> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        if (exponent == 0) {
            if (mantissa == 0) return Float.intBitsToFloat(sign);
            // subnormal: mantissa * 2^-24
            float value = mantissa * 0x1p-24f;
            return sign != 0 ? -value : value;
        }
        if (exponent == 31) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    /** The float value of a bfloat16 bit pattern held in the low 16 bits of {@code bits}. */
    static float bf16ToFloat(int bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** The FP16 bit pattern nearest to {@code value} (round to nearest even); used by tests and writers. */
    static int floatToFp16(float value) {
        int f = Float.floatToRawIntBits(value);
        int sign = (f >>> 16) & 0x8000;
        int exponent = ((f >>> 23) & 0xFF) - 127 + 15;
        int mantissa = f & 0x7FFFFF;
        if (((f >>> 23) & 0xFF) == 0xFF) return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0);
        if (exponent >= 31) return sign | 0x7C00;
        if (exponent <= 0) {
            if (exponent < -10) return sign;
            mantissa |= 0x800000;
            int shift = 14 - exponent;
            int half = mantissa >>> shift;
            int rest = mantissa & ((1 << shift) - 1);
            int halfway = 1 << (shift - 1);
            if (rest > halfway || (rest == halfway && (half & 1) != 0)) half++;
            return sign | half;
        }
        int half = sign | (exponent << 10) | (mantissa >>> 13);
        int rest = mantissa & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) half++;
        return half;
    }
}
