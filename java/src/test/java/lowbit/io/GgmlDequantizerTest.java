package lowbit.io;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import lowbit.Half;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** Hand-built blocks with values computed independently from ggml's block definitions. */
class GgmlDequantizerTest {
    private static ByteBuffer le(int bytes) {
        return ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static short fp16(float v) {
        return Half.fromFloat(v);
    }

    private static float[] decode(GgmlType type, ByteBuffer b, int count) {
        float[] out = new float[count];
        GgmlDequantizer.dequantize(type, b, 0, out, 0, count);
        return out;
    }

    @Test
    void f32F16Bf16() {
        ByteBuffer f32 = le(8).putFloat(1.25f).putFloat(-3f);
        assertArrayEquals(new float[] {1.25f, -3f}, decode(GgmlType.F32, f32, 2));
        ByteBuffer f16 = le(4).putShort((short) 0x3800).putShort((short) 0xC500);
        assertArrayEquals(new float[] {0.5f, -5f}, decode(GgmlType.F16, f16, 2));
        ByteBuffer bf16 = le(4).putShort((short) 0x4040).putShort((short) 0xBF00);
        assertArrayEquals(new float[] {3f, -0.5f}, decode(GgmlType.BF16, bf16, 2));
    }

    @Test
    void q8_0() {
        ByteBuffer b = le(34).putShort(fp16(0.5f));
        for (int j = 0; j < 32; j++) b.put((byte) (j - 16));
        float[] x = decode(GgmlType.Q8_0, b, 32);
        for (int j = 0; j < 32; j++) assertEquals(0.5f * (j - 16), x[j]);
    }

    @Test
    void q4_0() {
        ByteBuffer b = le(18).putShort(fp16(2f));
        for (int j = 0; j < 16; j++) b.put((byte) (j | ((15 - j) << 4)));
        float[] x = decode(GgmlType.Q4_0, b, 32);
        for (int j = 0; j < 16; j++) {
            assertEquals(2f * (j - 8), x[j], "low nibble " + j);
            assertEquals(2f * (15 - j - 8), x[j + 16], "high nibble " + j);
        }
    }

    @Test
    void q4_1() {
        ByteBuffer b = le(40).putShort(fp16(0.25f)).putShort(fp16(-1f));
        for (int j = 0; j < 16; j++) b.put((byte) (j | (3 << 4)));
        b.putShort(fp16(1f)).putShort(fp16(10f));
        for (int j = 0; j < 16; j++) b.put((byte) 0x51);
        float[] x = decode(GgmlType.Q4_1, b, 64);
        for (int j = 0; j < 16; j++) {
            assertEquals(0.25f * j - 1f, x[j]);
            assertEquals(0.25f * 3 - 1f, x[j + 16]);
            assertEquals(1f * 1 + 10f, x[32 + j]);
            assertEquals(1f * 5 + 10f, x[48 + j]);
        }
    }

    @Test
    void q4_k() {
        // scales: sub-blocks 0..3 keep scale/min in the low 6 bits of bytes 0..3 / 4..7; sub-blocks
        // 4..7 take low 4 bits from bytes 8..11 (scale: low nibble, min: high nibble) and the top 2
        // bits from the high bits of bytes 0..3 (scale) and 4..7 (min).
        int[] sc = {1, 2, 3, 4, 21, 38, 55, 63};
        int[] mn = {5, 6, 7, 8, 17, 34, 51, 60};
        byte[] scales = new byte[12];
        for (int j = 0; j < 4; j++) {
            scales[j] = (byte) (sc[j] | ((sc[j + 4] >> 4) << 6));
            scales[j + 4] = (byte) (mn[j] | ((mn[j + 4] >> 4) << 6));
            scales[j + 8] = (byte) ((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
        }
        ByteBuffer b = le(144).putShort(fp16(0.5f)).putShort(fp16(0.25f)).put(scales);
        // byte l of chunk c holds value (l % 16) in its low nibble (sub-block 2c) and 15 - l % 16 in
        // its high nibble (sub-block 2c+1)
        for (int c = 0; c < 4; c++) for (int l = 0; l < 32; l++) b.put((byte) ((l % 16) | ((15 - l % 16) << 4)));
        float[] x = decode(GgmlType.Q4_K, b, 256);
        for (int sub = 0; sub < 8; sub++) {
            for (int l = 0; l < 32; l++) {
                int q = sub % 2 == 0 ? l % 16 : 15 - l % 16;
                float expected = 0.5f * sc[sub] * q - 0.25f * mn[sub];
                assertEquals(expected, x[sub * 32 + l], 1e-6f, "sub-block " + sub + " element " + l);
            }
        }
    }

    @Test
    void q6_k() {
        // element e of the 256 has 6-bit value q(e) = e % 64; scales[s] = s - 8 for sub-block s of 16
        int[] q = new int[256];
        for (int e = 0; e < 256; e++) q[e] = (e * 7 + 3) % 64;
        byte[] ql = new byte[128], qh = new byte[64], scales = new byte[16];
        for (int s = 0; s < 16; s++) scales[s] = (byte) (s - 8);
        for (int half = 0; half < 2; half++) {
            for (int l = 0; l < 32; l++) {
                int base = half * 128;
                int q1 = q[base + l], q2 = q[base + l + 32], q3 = q[base + l + 64], q4 = q[base + l + 96];
                ql[half * 64 + l] = (byte) ((q1 & 0xF) | ((q3 & 0xF) << 4));
                ql[half * 64 + l + 32] = (byte) ((q2 & 0xF) | ((q4 & 0xF) << 4));
                qh[half * 32 + l] = (byte) ((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
        ByteBuffer b = le(210).put(ql).put(qh).put(scales).putShort(fp16(0.125f));
        float[] x = decode(GgmlType.Q6_K, b, 256);
        for (int e = 0; e < 256; e++) {
            int subBlock = e / 16;
            assertEquals(0.125f * (subBlock - 8) * (q[e] - 32), x[e], 1e-6f, "element " + e);
        }
    }

    @Test
    void rejectsUnsupportedTypesAndShortBuffers() {
        assertThrows(UnsupportedOperationException.class, () -> decode(GgmlType.Q5_K, le(176), 256));
        assertThrows(IndexOutOfBoundsException.class, () -> decode(GgmlType.Q8_0, le(33), 32));
        assertThrows(IllegalArgumentException.class, () -> decode(GgmlType.Q8_0, le(34), 31));
    }
}
