package lowbit.io;

import lowbit.Half;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Converts GGML-encoded tensor data to float32. Block layouts follow ggml's definitions:
 *
 * <ul>
 *   <li>Q8_0: 32 values = fp16 scale d, 32 × int8 q; x = d·q.
 *   <li>Q4_0: 32 values = fp16 d, 16 bytes; value j (j&lt;16) is the low nibble of byte j, value
 *       j+16 its high nibble; x = d·(q − 8).
 *   <li>Q4_1: 32 values = fp16 d, fp16 m, 16 bytes as Q4_0; x = d·q + m.
 *   <li>Q4_K: 256 values = fp16 d, fp16 dmin, 12 bytes of packed 6-bit scales and mins for 8
 *       sub-blocks of 32, 128 bytes of nibbles; x = d·sc·q − dmin·m.
 *   <li>Q6_K: 256 values = 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales,
 *       fp16 d; x = d·scale·(q − 32).
 * </ul>
 */
public final class GgmlDequantizer {
    private GgmlDequantizer() {}

    /**
     * Decodes {@code count} elements of {@code type} from {@code src} (read from its absolute index
     * {@code srcOffset}, little-endian) into {@code dst[dstOffset ..]}. {@code count} must be a
     * whole number of blocks.
     */
    public static void dequantize(GgmlType type, ByteBuffer src, long srcOffset, float[] dst, int dstOffset, int count) {
        if (!type.canDequantize()) {
            throw new UnsupportedOperationException("dequantization of " + type + " is not implemented");
        }
        long bytes = type.bytesFor(count);
        if (srcOffset < 0 || srcOffset + bytes > src.limit()) {
            throw new IndexOutOfBoundsException("need " + bytes + " bytes at " + srcOffset + ", buffer holds " + src.limit());
        }
        ByteBuffer b = src.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int s = Math.toIntExact(srcOffset);
        int blocks = count / type.blockSize();
        switch (type) {
            case F32:
                for (int i = 0; i < count; i++) dst[dstOffset + i] = b.getFloat(s + 4 * i);
                break;
            case F16:
                for (int i = 0; i < count; i++) dst[dstOffset + i] = Half.toFloat(b.getShort(s + 2 * i));
                break;
            case BF16:
                for (int i = 0; i < count; i++) dst[dstOffset + i] = Half.bf16ToFloat(b.getShort(s + 2 * i));
                break;
            case Q8_0:
                for (int blk = 0; blk < blocks; blk++) q8_0(b, s + blk * 34, dst, dstOffset + blk * 32);
                break;
            case Q4_0:
                for (int blk = 0; blk < blocks; blk++) q4_0(b, s + blk * 18, dst, dstOffset + blk * 32);
                break;
            case Q4_1:
                for (int blk = 0; blk < blocks; blk++) q4_1(b, s + blk * 20, dst, dstOffset + blk * 32);
                break;
            case Q4_K:
                for (int blk = 0; blk < blocks; blk++) q4_k(b, s + blk * 144, dst, dstOffset + blk * 256);
                break;
            case Q6_K:
                for (int blk = 0; blk < blocks; blk++) q6_k(b, s + blk * 210, dst, dstOffset + blk * 256);
                break;
            default:
                throw new AssertionError(type);
        }
    }

    private static float half(ByteBuffer b, int at) {
        return Half.toFloat(b.getShort(at));
    }

    private static void q8_0(ByteBuffer b, int at, float[] dst, int out) {
        float d = half(b, at);
        for (int j = 0; j < 32; j++) dst[out + j] = d * b.get(at + 2 + j);
    }

    private static void q4_0(ByteBuffer b, int at, float[] dst, int out) {
        float d = half(b, at);
        for (int j = 0; j < 16; j++) {
            int q = b.get(at + 2 + j) & 0xFF;
            dst[out + j] = d * ((q & 0x0F) - 8);
            dst[out + j + 16] = d * ((q >>> 4) - 8);
        }
    }

    private static void q4_1(ByteBuffer b, int at, float[] dst, int out) {
        float d = half(b, at);
        float m = half(b, at + 2);
        for (int j = 0; j < 16; j++) {
            int q = b.get(at + 4 + j) & 0xFF;
            dst[out + j] = d * (q & 0x0F) + m;
            dst[out + j + 16] = d * (q >>> 4) + m;
        }
    }

    private static void q4_k(ByteBuffer b, int at, float[] dst, int out) {
        float d = half(b, at);
        float dmin = half(b, at + 2);
        int scales = at + 4;
        int qs = at + 16;
        for (int sub = 0; sub < 8; sub += 2) {
            float d1 = d * scaleK4(b, scales, sub);
            float m1 = dmin * minK4(b, scales, sub);
            float d2 = d * scaleK4(b, scales, sub + 1);
            float m2 = dmin * minK4(b, scales, sub + 1);
            int q = qs + sub * 16; // 32 bytes per pair of sub-blocks
            int o = out + sub * 32;
            for (int l = 0; l < 32; l++) {
                int v = b.get(q + l) & 0xFF;
                dst[o + l] = d1 * (v & 0x0F) - m1;
                dst[o + 32 + l] = d2 * (v >>> 4) - m2;
            }
        }
    }

    /** 6-bit scale of sub-block j of a Q4_K/Q5_K block (ggml's get_scale_min_k4, scale half). */
    static int scaleK4(ByteBuffer b, int scales, int j) {
        if (j < 4) return b.get(scales + j) & 63;
        return (b.get(scales + j + 4) & 0x0F) | (((b.get(scales + j - 4) & 0xFF) >>> 6) << 4);
    }

    /** 6-bit min of sub-block j of a Q4_K/Q5_K block (ggml's get_scale_min_k4, min half). */
    static int minK4(ByteBuffer b, int scales, int j) {
        if (j < 4) return b.get(scales + j + 4) & 63;
        return ((b.get(scales + j + 4) & 0xFF) >>> 4) | (((b.get(scales + j) & 0xFF) >>> 6) << 4);
    }

    private static void q6_k(ByteBuffer b, int at, float[] dst, int out) {
        float d = half(b, at + 208);
        for (int half = 0; half < 2; half++) {
            int ql = at + half * 64;
            int qh = at + 128 + half * 32;
            int sc = at + 192 + half * 8;
            int o = out + half * 128;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int low0 = b.get(ql + l) & 0xFF;
                int low32 = b.get(ql + l + 32) & 0xFF;
                int high = b.get(qh + l) & 0xFF;
                int q1 = ((low0 & 0x0F) | ((high & 3) << 4)) - 32;
                int q2 = ((low32 & 0x0F) | (((high >>> 2) & 3) << 4)) - 32;
                int q3 = ((low0 >>> 4) | (((high >>> 4) & 3) << 4)) - 32;
                int q4 = ((low32 >>> 4) | (((high >>> 6) & 3) << 4)) - 32;
                dst[o + l] = d * b.get(sc + is) * q1;
                dst[o + l + 32] = d * b.get(sc + is + 2) * q2;
                dst[o + l + 64] = d * b.get(sc + is + 4) * q3;
                dst[o + l + 96] = d * b.get(sc + is + 6) * q4;
            }
        }
    }
}
