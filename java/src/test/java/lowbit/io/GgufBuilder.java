package lowbit.io;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Builds GGUF files byte by byte for tests, including deliberately inconsistent ones. */
final class GgufBuilder {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final List<byte[]> tensorData = new ArrayList<>();
    private final List<Long> tensorOffsets = new ArrayList<>();
    int alignment = 32;

    GgufBuilder header(int version, long tensorCount, long kvCount) {
        u32(GgufFile.MAGIC);
        u32(version);
        u64(tensorCount);
        u64(kvCount);
        return this;
    }

    GgufBuilder u8(int v) {
        out.write(v);
        return this;
    }

    GgufBuilder u32(long v) {
        return raw(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array());
    }

    GgufBuilder u64(long v) {
        return raw(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
    }

    GgufBuilder f32(float v) {
        return raw(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(v).array());
    }

    GgufBuilder f64(double v) {
        return raw(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(v).array());
    }

    GgufBuilder str(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        u64(b.length);
        return raw(b);
    }

    GgufBuilder raw(byte[] b) {
        out.write(b, 0, b.length);
        return this;
    }

    GgufBuilder kvString(String key, String value) {
        return str(key).u32(GgufValueReader.STRING).str(value);
    }

    GgufBuilder kvU32(String key, long value) {
        return str(key).u32(GgufValueReader.UINT32).u32(value);
    }

    GgufBuilder kvF32(String key, float value) {
        return str(key).u32(GgufValueReader.FLOAT32).f32(value);
    }

    /** A tensor info; {@code data} is placed at {@code offset} of the data section by {@link #build}. */
    GgufBuilder tensor(String name, GgmlType type, long[] dims, long offset, byte[] data) {
        str(name).u32(dims.length);
        for (long d : dims) u64(d);
        u32(type.id()).u64(offset);
        tensorData.add(data);
        tensorOffsets.add(offset);
        return this;
    }

    /** Header so far, padded to the alignment, followed by the tensor data at their offsets. */
    byte[] build() {
        byte[] header = out.toByteArray();
        int dataStart = (header.length + alignment - 1) / alignment * alignment;
        long end = 0;
        for (int i = 0; i < tensorData.size(); i++) end = Math.max(end, tensorOffsets.get(i) + tensorData.get(i).length);
        byte[] file = new byte[(int) (dataStart + end)];
        System.arraycopy(header, 0, file, 0, header.length);
        for (int i = 0; i < tensorData.size(); i++) {
            byte[] d = tensorData.get(i);
            System.arraycopy(d, 0, file, (int) (dataStart + tensorOffsets.get(i)), d.length);
        }
        return file;
    }

    static byte[] f32Bytes(float... values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) b.putFloat(v);
        return b.array();
    }
}
