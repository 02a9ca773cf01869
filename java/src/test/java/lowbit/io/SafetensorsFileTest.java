package lowbit.io;

import static org.junit.jupiter.api.Assertions.*;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsFileTest {
    @TempDir
    Path tmp;

    static byte[] file(String headerJson, byte[] data) {
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).array());
        out.writeBytes(header);
        out.writeBytes(data);
        return out.toByteArray();
    }

    private Path write(String name, byte[] bytes) throws IOException {
        Path p = tmp.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    private MalformedModelException malformed(String header, byte[] data) throws IOException {
        Path p = write("bad.safetensors", file(header, data));
        return assertThrows(MalformedModelException.class, () -> SafetensorsFile.open(p).close());
    }

    private static byte[] data() {
        ByteBuffer b = ByteBuffer.allocate(16 + 4 + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.putFloat(1).putFloat(2).putFloat(3).putFloat(4); // a: F32 [2,2]
        b.putShort((short) 0x3C00).putShort((short) 0xC000); // b: F16 [2]
        b.putShort((short) 0x3F80).putShort((short) 0x4040); // c: BF16 [2]
        return b.array();
    }

    private static final String HEADER = "{\"__metadata__\":{\"format\":\"pt\"},"
            + "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
            + "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[16,20]},"
            + "\"c\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[20,24]}}";

    @Test
    void readsF32F16Bf16() throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(write("m.safetensors", file(HEADER, data())))) {
            assertEquals("pt", f.metadata().get("format"));
            assertArrayEquals(new long[] {2, 2}, f.tensor("a").shape());
            assertArrayEquals(new float[] {1, 2, 3, 4}, f.readFloats("a"));
            assertArrayEquals(new float[] {1, -2}, f.readFloats("b"));
            assertArrayEquals(new float[] {1, 3}, f.readFloats("c"));
        }
    }

    @Test
    void readsShardedCheckpointThroughIndex() throws IOException {
        write("model-00001-of-00002.safetensors", file("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(5).array()));
        write("model-00002-of-00002.safetensors", file("{\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(6).array()));
        Files.writeString(tmp.resolve("model.safetensors.index.json"), "{\"metadata\":{},\"weight_map\":{"
                + "\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\"}}");
        try (SafetensorsModel m = SafetensorsModel.open(tmp)) {
            assertEquals(java.util.Set.of("x", "y"), m.tensorNames());
            assertArrayEquals(new float[] {5}, m.readFloats("x"));
            assertArrayEquals(new float[] {6}, m.readFloats("y"));
        }
        Files.writeString(tmp.resolve("model.safetensors.index.json"), "{\"weight_map\":{"
                + "\"x\":\"model-00002-of-00002.safetensors\"}}");
        MalformedModelException e = assertThrows(MalformedModelException.class, () -> SafetensorsModel.open(tmp).close());
        assertTrue(e.getMessage().contains("does not hold it"), e.getMessage());
        Files.writeString(tmp.resolve("model.safetensors.index.json"), "{\"weight_map\":{\"x\":\"../elsewhere.safetensors\"}}");
        assertThrows(MalformedModelException.class, () -> SafetensorsModel.open(tmp).close());
    }

    @Test
    void rejectsHeaderLengthBeyondFile() throws IOException {
        byte[] bytes = file(HEADER, data());
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, bytes.length);
        Path p = write("long.safetensors", bytes);
        MalformedModelException e = assertThrows(MalformedModelException.class, () -> SafetensorsFile.open(p).close());
        assertTrue(e.getMessage().contains("header length"), e.getMessage());
        Path tiny = write("tiny.safetensors", new byte[5]);
        assertThrows(MalformedModelException.class, () -> SafetensorsFile.open(tiny).close());
    }

    @Test
    void rejectsOffsetsOutOfRangeOrOverlapping() throws IOException {
        MalformedModelException e = malformed("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,32]}}", new byte[8]);
        assertTrue(e.getMessage().contains("outside the data section"), e.getMessage());
        e = malformed("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", new byte[8]);
        assertTrue(e.getMessage().contains("outside the data section"), e.getMessage());
        e = malformed("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]);
        assertTrue(e.getMessage().contains("overlaps"), e.getMessage());
    }

    @Test
    void rejectsUnknownDtypeShapeMismatchAndBadJson() throws IOException {
        MalformedModelException e = malformed("{\"a\":{\"dtype\":\"F8_E9\",\"shape\":[2],\"data_offsets\":[0,2]}}", new byte[2]);
        assertTrue(e.getMessage().contains("unknown dtype F8_E9"), e.getMessage());
        e = malformed("{\"a\":{\"dtype\":\"F16\",\"shape\":[3,2],\"data_offsets\":[0,8]}}", new byte[8]);
        assertTrue(e.getMessage().contains("needs 12 bytes but data_offsets hold 8"), e.getMessage());
        e = malformed("{\"a\":", new byte[0]);
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
        e = malformed("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", new byte[4]);
        assertTrue(e.getMessage().contains("invalid dimension"), e.getMessage());
    }
}
