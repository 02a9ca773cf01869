package lowbit.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One safetensors file: an 8-byte little-endian header length N, a JSON header of N bytes mapping
 * tensor names to {@code {dtype, shape, data_offsets}} (plus an optional {@code __metadata__}
 * string map), then the data section. Opening validates the header and the byte layout and throws
 * {@link MalformedModelException} on any inconsistency; tensor data is memory-mapped per tensor.
 */
public final class SafetensorsFile implements Closeable {
    /** Largest header accepted (the format's reference implementation uses 100 MB). */
    static final long MAX_HEADER_BYTES = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, String> metadata;
    private final Map<String, SafetensorsTensorInfo> tensors;

    private SafetensorsFile(Path path, FileChannel channel, long dataStart, Map<String, String> metadata,
                            Map<String, SafetensorsTensorInfo> tensors) {
        this.path = path;
        this.channel = channel;
        this.dataStart = dataStart;
        this.metadata = metadata;
        this.tensors = tensors;
    }

    /** Opens and validates {@code path}; the caller closes the result. */
    public static SafetensorsFile open(Path path) throws IOException {
        FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
        try {
            return read(path, channel);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private static SafetensorsFile read(Path path, FileChannel channel) throws IOException {
        long fileSize = channel.size();
        if (fileSize < 8) throw new MalformedModelException("file of " + fileSize + " bytes is too short for the 8-byte header length", 0);
        ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(channel, lengthBytes, 0);
        long headerLength = lengthBytes.getLong(0);
        if (headerLength < 2 || headerLength > fileSize - 8) {
            throw new MalformedModelException("header length " + Long.toUnsignedString(headerLength)
                    + " runs beyond the end of the file (size " + fileSize + ")", 0);
        }
        if (headerLength > MAX_HEADER_BYTES) {
            throw new MalformedModelException("header length " + headerLength + " exceeds the limit of " + MAX_HEADER_BYTES, 0);
        }
        ByteBuffer header = ByteBuffer.allocate((int) headerLength);
        readFully(channel, header, 8);
        JsonNode root;
        try {
            root = JSON.readTree(header.array());
        } catch (IOException e) {
            throw new MalformedModelException("header is not valid JSON: " + e.getMessage(), 8);
        }
        if (root == null || !root.isObject()) throw new MalformedModelException("header is not a JSON object", 8);

        long dataStart = 8 + headerLength;
        long dataSize = fileSize - dataStart;
        Map<String, String> metadata = new LinkedHashMap<>();
        Map<String, SafetensorsTensorInfo> tensors = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> entry : root.properties()) {
            String name = entry.getKey();
            JsonNode node = entry.getValue();
            if (name.equals("__metadata__")) {
                if (!node.isObject()) throw new MalformedModelException("__metadata__ is not an object", 8);
                for (Map.Entry<String, JsonNode> kv : node.properties()) {
                    if (!kv.getValue().isTextual()) throw new MalformedModelException("__metadata__." + kv.getKey() + " is not a string", 8);
                    metadata.put(kv.getKey(), kv.getValue().asText());
                }
                continue;
            }
            tensors.put(name, tensorInfo(name, node, dataStart, dataSize));
        }
        checkNoOverlap(tensors, dataStart);
        return new SafetensorsFile(path, channel, dataStart, Collections.unmodifiableMap(metadata), Collections.unmodifiableMap(tensors));
    }

    private static SafetensorsTensorInfo tensorInfo(String name, JsonNode node, long dataStart, long dataSize) throws MalformedModelException {
        if (!node.isObject()) throw new MalformedModelException("entry for tensor " + name + " is not an object", 8);
        JsonNode dtypeNode = node.get("dtype");
        JsonNode shapeNode = node.get("shape");
        JsonNode offsetsNode = node.get("data_offsets");
        if (dtypeNode == null || !dtypeNode.isTextual() || shapeNode == null || !shapeNode.isArray()
                || offsetsNode == null || !offsetsNode.isArray() || offsetsNode.size() != 2) {
            throw new MalformedModelException("tensor " + name + " needs dtype (string), shape (array) and data_offsets ([begin, end])", 8);
        }
        SafetensorsDType dtype = SafetensorsDType.byName(dtypeNode.asText());
        if (dtype == null) throw new MalformedModelException("tensor " + name + " has unknown dtype " + dtypeNode.asText(), 8);
        long[] shape = new long[shapeNode.size()];
        long elements = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.canConvertToExactIntegral() || !d.canConvertToLong() || d.asLong() < 0) {
                throw new MalformedModelException("tensor " + name + " has invalid dimension " + d, 8);
            }
            shape[i] = d.asLong();
            try {
                elements = Math.multiplyExact(elements, shape[i]);
            } catch (ArithmeticException e) {
                throw new MalformedModelException("tensor " + name + " element count overflows", 8);
            }
        }
        JsonNode b = offsetsNode.get(0), e = offsetsNode.get(1);
        if (!b.canConvertToExactIntegral() || !e.canConvertToExactIntegral() || !b.canConvertToLong() || !e.canConvertToLong()) {
            throw new MalformedModelException("tensor " + name + " has non-integer data_offsets", 8);
        }
        long begin = b.asLong(), end = e.asLong();
        if (begin < 0 || end < begin || end > dataSize) {
            throw new MalformedModelException("tensor " + name + " data_offsets [" + begin + ", " + end
                    + ") lie outside the data section of " + dataSize + " bytes", dataStart + Math.max(0, begin));
        }
        long expected;
        try {
            expected = Math.multiplyExact(elements, (long) dtype.bytes());
        } catch (ArithmeticException ex) {
            throw new MalformedModelException("tensor " + name + " byte count overflows", 8);
        }
        if (end - begin != expected) {
            throw new MalformedModelException("tensor " + name + " shape " + java.util.Arrays.toString(shape) + " of " + dtype
                    + " needs " + expected + " bytes but data_offsets hold " + (end - begin), dataStart + begin);
        }
        return new SafetensorsTensorInfo(name, dtype, shape, begin, end);
    }

    private static void checkNoOverlap(Map<String, SafetensorsTensorInfo> tensors, long dataStart) throws MalformedModelException {
        List<SafetensorsTensorInfo> sorted = new ArrayList<>(tensors.values());
        sorted.sort(Comparator.comparingLong(SafetensorsTensorInfo::begin).thenComparingLong(SafetensorsTensorInfo::end));
        SafetensorsTensorInfo previous = null;
        for (SafetensorsTensorInfo t : sorted) {
            if (previous != null && previous.end() > t.begin() && t.byteSize() > 0) {
                throw new MalformedModelException("data of tensor " + t.name() + " overlaps tensor " + previous.name(), dataStart + t.begin());
            }
            if (t.byteSize() > 0) previous = t;
        }
    }

    private static void readFully(FileChannel channel, ByteBuffer into, long at) throws IOException {
        while (into.hasRemaining()) {
            if (channel.read(into, at + into.position()) < 0) {
                throw new MalformedModelException("unexpected end of file", at + into.position());
            }
        }
    }

    public Path path() {
        return path;
    }

    /** The {@code __metadata__} string map (empty when absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** All tensors, in header order. */
    public Map<String, SafetensorsTensorInfo> tensors() {
        return tensors;
    }

    public SafetensorsTensorInfo tensor(String name) {
        SafetensorsTensorInfo t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException("no tensor " + name + " in " + path);
        return t;
    }

    /** The tensor's bytes, memory-mapped read-only, little-endian; a single tensor must be below 2 GB. */
    public ByteBuffer map(String name) throws IOException {
        SafetensorsTensorInfo t = tensor(name);
        if (t.byteSize() > Integer.MAX_VALUE) {
            throw new UnsupportedOperationException("tensor " + name + " has " + t.byteSize() + " bytes; one mapping holds at most 2 GB");
        }
        return channel.map(FileChannel.MapMode.READ_ONLY, dataStart + t.begin(), t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The tensor converted to float32 (F32, F16 and BF16 only), row-major. */
    public float[] readFloats(String name) throws IOException {
        SafetensorsTensorInfo t = tensor(name);
        GgmlType type;
        switch (t.dtype()) {
            case F32: type = GgmlType.F32; break;
            case F16: type = GgmlType.F16; break;
            case BF16: type = GgmlType.BF16; break;
            default: throw new UnsupportedOperationException("tensor " + name + " has dtype " + t.dtype() + ", not F32/F16/BF16");
        }
        float[] out = new float[Math.toIntExact(t.elementCount())];
        GgmlDequantizer.dequantize(type, map(name), 0, out, 0, out.length);
        return out;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
