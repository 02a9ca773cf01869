package lowbit.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.Half;

/**
 * Writes float tensors as safetensors files for tests: one file, or shards plus a {@code
 * model.safetensors.index.json}, in F32, F16 or BF16 (rounded to nearest even by {@link Half}).
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Entry(float[] values, long[] shape) {}

    private final Map<String, Entry> tensors = new LinkedHashMap<>();

    /** Adds a tensor of PyTorch shape {@code shape} (row-major values). */
    public SafetensorsWriter add(String name, float[] values, long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        if (n != values.length) throw new IllegalArgumentException(name + ": " + values.length + " values for shape " + java.util.Arrays.toString(shape));
        tensors.put(name, new Entry(values, shape.clone()));
        return this;
    }

    /** Writes all tensors to one file. */
    public void write(Path file, SafetensorsDType dtype) throws IOException {
        writeFile(file, dtype, new ArrayList<>(tensors.keySet()));
    }

    /**
     * Writes the tensors round-robin into {@code shards} files {@code model-0000i-of-0000n.safetensors}
     * in {@code dir}, plus the index JSON.
     */
    public void writeSharded(Path dir, SafetensorsDType dtype, int shards) throws IOException {
        List<List<String>> parts = new ArrayList<>();
        for (int i = 0; i < shards; i++) parts.add(new ArrayList<>());
        int i = 0;
        for (String name : tensors.keySet()) parts.get(i++ % shards).add(name);
        ObjectNode index = JSON.createObjectNode();
        index.putObject("metadata").put("total_size", 0);
        ObjectNode map = index.putObject("weight_map");
        for (int s = 0; s < shards; s++) {
            String fileName = String.format("model-%05d-of-%05d.safetensors", s + 1, shards);
            writeFile(dir.resolve(fileName), dtype, parts.get(s));
            for (String name : parts.get(s)) map.put(name, fileName);
        }
        Files.writeString(dir.resolve("model.safetensors.index.json"), JSON.writeValueAsString(index));
    }

    private void writeFile(Path file, SafetensorsDType dtype, List<String> names) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        header.putObject("__metadata__").put("format", "pt");
        long offset = 0;
        for (String name : names) {
            Entry e = tensors.get(name);
            ObjectNode t = header.putObject(name);
            t.put("dtype", dtype.name());
            var shape = t.putArray("shape");
            for (long d : e.shape()) shape.add(d);
            var offsets = t.putArray("data_offsets");
            offsets.add(offset);
            offset += (long) e.values().length * dtype.bytes();
            offsets.add(offset);
        }
        byte[] json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] headerBytes = new byte[padded];
        java.util.Arrays.fill(headerBytes, (byte) ' ');
        System.arraycopy(json, 0, headerBytes, 0, json.length);
        try (OutputStream out = new java.io.BufferedOutputStream(Files.newOutputStream(file), 1 << 20)) {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
            out.write(headerBytes);
            for (String name : names) {
                float[] v = tensors.get(name).values();
                ByteBuffer b = ByteBuffer.allocate(v.length * dtype.bytes()).order(ByteOrder.LITTLE_ENDIAN);
                for (float f : v) {
                    switch (dtype) {
                        case F32: b.putFloat(f); break;
                        case F16: b.putShort(Half.fromFloat(f)); break;
                        case BF16: b.putShort(Half.bf16FromFloat(f)); break;
                        default: throw new IllegalArgumentException("float tensors only: " + dtype);
                    }
                }
                out.write(b.array());
            }
        }
    }
}
