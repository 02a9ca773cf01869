package lowbit.io;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GgufFileTest {
    @TempDir
    Path tmp;

    private Path write(byte[] bytes) throws IOException {
        Path p = Files.createTempFile(tmp, "t", ".gguf");
        Files.write(p, bytes);
        return p;
    }

    private MalformedModelException malformed(byte[] bytes) throws IOException {
        Path p = write(bytes);
        return assertThrows(MalformedModelException.class, () -> GgufFile.open(p).close());
    }

    /** A valid file with every metadata value type and two tensors. */
    private static GgufBuilder valid() {
        GgufBuilder b = new GgufBuilder().header(3, 2, 14);
        b.str("u8").u32(GgufValueReader.UINT8).u8(200);
        b.str("i8").u32(GgufValueReader.INT8).u8(0xFF);
        b.str("u16").u32(GgufValueReader.UINT16).raw(new byte[] {(byte) 0xFF, (byte) 0xFF});
        b.str("i16").u32(GgufValueReader.INT16).raw(new byte[] {(byte) 0xFE, (byte) 0xFF});
        b.kvU32("u32", 0xFFFFFFFFL);
        b.str("i32").u32(GgufValueReader.INT32).u32(-7);
        b.kvF32("f32", 1.5f);
        b.str("bool").u32(GgufValueReader.BOOL).u8(1);
        b.kvString("name", "héllo");
        b.str("u64").u32(GgufValueReader.UINT64).u64(1L << 40);
        b.str("i64").u32(GgufValueReader.INT64).u64(-5);
        b.str("f64").u32(GgufValueReader.FLOAT64).f64(2.25);
        b.str("strings").u32(GgufValueReader.ARRAY).u32(GgufValueReader.STRING).u64(2).str("a b").str("Ġx");
        b.str("nested").u32(GgufValueReader.ARRAY).u32(GgufValueReader.ARRAY).u64(1)
                .u32(GgufValueReader.INT32).u64(3).u32(1).u32(2).u32(3);
        b.tensor("w", GgmlType.F32, new long[] {2, 3}, 0, GgufBuilder.f32Bytes(1, 2, 3, 4, 5, 6));
        b.tensor("v", GgmlType.F32, new long[] {4}, 32, GgufBuilder.f32Bytes(-1, -2, -3, -4));
        return b;
    }

    @Test
    void readsEveryValueTypeAndTensor() throws IOException {
        try (GgufFile g = GgufFile.open(write(valid().build()))) {
            assertEquals(3, g.version());
            assertEquals(200L, g.getLong("u8"));
            assertEquals(-1L, g.getLong("i8"));
            assertEquals(65535L, g.getLong("u16"));
            assertEquals(-2L, g.getLong("i16"));
            assertEquals(0xFFFFFFFFL, g.getLong("u32"));
            assertEquals(-7, g.getInt("i32"));
            assertEquals(1.5, g.getDouble("f32"));
            assertEquals(Boolean.TRUE, g.metadata().get("bool"));
            assertEquals("héllo", g.getString("name"));
            assertEquals(1L << 40, g.getLong("u64"));
            assertEquals(-5L, g.getLong("i64"));
            assertEquals(2.25, g.getDouble("f64"));
            assertArrayEquals(new String[] {"a b", "Ġx"}, g.getStringArray("strings"));
            Object[] nested = (Object[]) g.metadata().get("nested");
            assertArrayEquals(new long[] {1, 2, 3}, (long[]) nested[0]);
            GgufTensorInfo w = g.tensor("w");
            assertArrayEquals(new long[] {2, 3}, w.dims());
            assertEquals(3, w.rows());
            assertEquals(2, w.columns());
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, g.readFloats("w"));
            assertArrayEquals(new float[] {-1, -2, -3, -4}, g.readFloats("v"));
            ByteBuffer mapped = g.map("v");
            assertEquals(16, mapped.capacity());
            assertEquals(0, g.dataStart() % 32);
        }
    }

    @Test
    void honoursCustomAlignment() throws IOException {
        GgufBuilder b = new GgufBuilder().header(2, 1, 1).kvU32("general.alignment", 64);
        b.alignment = 64;
        b.tensor("t", GgmlType.F32, new long[] {2}, 64, GgufBuilder.f32Bytes(7, 8));
        try (GgufFile g = GgufFile.open(write(b.build()))) {
            assertEquals(64, g.alignment());
            assertEquals(0, g.dataStart() % 64);
            assertArrayEquals(new float[] {7, 8}, g.readFloats("t"));
        }
    }

    @Test
    void rejectsBadMagicAndVersion() throws IOException {
        byte[] file = valid().build();
        file[0] = 'X';
        assertTrue(malformed(file).getMessage().contains("not a GGUF file"));
        byte[] v1 = new GgufBuilder().header(1, 0, 0).build();
        MalformedModelException e = malformed(v1);
        assertTrue(e.getMessage().contains("unsupported GGUF version 1"), e.getMessage());
        assertEquals(4, e.offset());
    }

    @Test
    void rejectsEveryTruncationOfTheHeader() throws IOException {
        byte[] file = valid().build();
        int headerEnd = file.length - 64; // data section is 64 bytes (two tensors at 0 and 32)
        for (int cut = 0; cut < headerEnd; cut += 7) {
            MalformedModelException e = malformed(Arrays.copyOf(file, cut));
            assertTrue(e.offset() >= 0 && e.offset() <= file.length, "offset " + e.offset() + " for cut " + cut);
        }
    }

    @Test
    void rejectsCountsAndLengthsBeyondTheFile() throws IOException {
        assertTrue(malformed(new GgufBuilder().header(3, 1L << 40, 0).build()).getMessage().contains("tensor count"));
        assertTrue(malformed(new GgufBuilder().header(3, 0, 1L << 40).build()).getMessage().contains("metadata count"));
        byte[] longKey = new GgufBuilder().header(3, 0, 1).u64(1L << 50).raw(new byte[40]).build();
        MalformedModelException e = malformed(longKey);
        assertTrue(e.getMessage().contains("runs beyond the end of the file"), e.getMessage());
        assertEquals(24, e.offset());
        byte[] longArray = new GgufBuilder().header(3, 0, 1).str("a").u32(GgufValueReader.ARRAY)
                .u32(GgufValueReader.UINT32).u64(1_000_000).raw(new byte[40]).build();
        assertTrue(malformed(longArray).getMessage().contains("array length 1000000"));
    }

    @Test
    void rejectsUnknownTypes() throws IOException {
        byte[] badValue = new GgufBuilder().header(3, 0, 1).str("k").u32(99).u64(0).build();
        assertTrue(malformed(badValue).getMessage().contains("unknown value type 99"));
        GgufBuilder b = new GgufBuilder().header(3, 1, 0);
        b.str("t").u32(1).u64(4).u32(77).u64(0);
        MalformedModelException e = malformed(b.raw(new byte[64]).build());
        assertTrue(e.getMessage().contains("unknown ggml type 77"), e.getMessage());
    }

    @Test
    void rejectsDataOutOfRangeOrOverlapping() throws IOException {
        GgufBuilder beyond = new GgufBuilder().header(3, 1, 0);
        beyond.tensor("big", GgmlType.F32, new long[] {4, 4}, 0, GgufBuilder.f32Bytes(1, 2, 3));
        MalformedModelException e = malformed(beyond.build());
        assertTrue(e.getMessage().contains("big") && e.getMessage().contains("beyond the end"), e.getMessage());

        GgufBuilder overlap = new GgufBuilder().header(3, 2, 0);
        overlap.tensor("a", GgmlType.F32, new long[] {16}, 0, new byte[64]);
        overlap.tensor("b", GgmlType.F32, new long[] {16}, 32, new byte[64]);
        e = malformed(overlap.build());
        assertTrue(e.getMessage().contains("overlaps"), e.getMessage());

        GgufBuilder unaligned = new GgufBuilder().header(3, 1, 0);
        unaligned.tensor("u", GgmlType.F32, new long[] {4}, 4, new byte[16]);
        assertTrue(malformed(unaligned.build()).getMessage().contains("alignment"));
    }

    @Test
    void rejectsDimsThatDoNotMatchTheBlockLayout() throws IOException {
        GgufBuilder b = new GgufBuilder().header(3, 1, 0);
        b.tensor("q", GgmlType.Q8_0, new long[] {33, 1}, 0, new byte[68]);
        assertTrue(malformed(b.build()).getMessage().contains("not a multiple of the Q8_0 block size 32"));
        GgufBuilder zero = new GgufBuilder().header(3, 1, 0);
        zero.tensor("z", GgmlType.F32, new long[] {0}, 0, new byte[0]);
        assertTrue(malformed(zero.build()).getMessage().contains("dimension 0 is 0"));
    }
}
