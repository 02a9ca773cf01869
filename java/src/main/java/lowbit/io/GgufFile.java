package lowbit.io;

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
 * A GGUF (version 2 or 3) model file: metadata key/values, tensor infos, and tensor data mapped
 * from the file one tensor at a time (so files beyond 2 GB work; a single tensor must be below
 * 2 GB). Opening validates the whole header and the tensor layout and throws {@link
 * MalformedModelException} on any inconsistency.
 *
 * <p>Metadata values are Java objects: integers of every width as {@link Long} (unsigned ones
 * zero-extended), FLOAT32/FLOAT64 as {@link Double}, BOOL as {@link Boolean}, STRING as {@link
 * String}; arrays as {@code long[]}, {@code double[]}, {@code boolean[]}, {@code String[]}, or
 * {@code Object[]} for arrays of arrays.
 */
public final class GgufFile implements Closeable {
    /** "GGUF" read as a little-endian uint32. */
    static final int MAGIC = 0x46554747;
    static final int DEFAULT_ALIGNMENT = 32;

    private final Path path;
    private final FileChannel channel;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, GgufTensorInfo> tensors;
    private final long dataStart;
    private final int alignment;

    private GgufFile(Path path, FileChannel channel, int version, Map<String, Object> metadata,
                     Map<String, GgufTensorInfo> tensors, long dataStart, int alignment) {
        this.path = path;
        this.channel = channel;
        this.version = version;
        this.metadata = metadata;
        this.tensors = tensors;
        this.dataStart = dataStart;
        this.alignment = alignment;
    }

    /** Opens and validates {@code path}; the caller closes the result. */
    public static GgufFile open(Path path) throws IOException {
        FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
        try {
            return read(path, channel);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    private static GgufFile read(Path path, FileChannel channel) throws IOException {
        BoundedChannelReader in = new BoundedChannelReader(channel);
        int magic = in.i32("magic");
        if (magic != MAGIC) {
            throw new MalformedModelException(String.format("not a GGUF file: magic 0x%08x, expected 0x%08x (\"GGUF\")", magic, MAGIC), 0);
        }
        long versionAt = in.position();
        long version = in.u32("version");
        if (version != 2 && version != 3) {
            throw new MalformedModelException("unsupported GGUF version " + version + " (supported: 2, 3)", versionAt);
        }
        long countsAt = in.position();
        long tensorCount = in.i64("tensor count");
        long kvCount = in.i64("metadata key/value count");
        // each tensor info takes at least 8+1+4+4+8+8 bytes, each key/value at least 8+1+4+1
        if (tensorCount < 0 || tensorCount > in.remaining() / 33) {
            throw new MalformedModelException("tensor count " + Long.toUnsignedString(tensorCount) + " cannot fit in the file", countsAt);
        }
        if (kvCount < 0 || kvCount > in.remaining() / 14) {
            throw new MalformedModelException("metadata count " + Long.toUnsignedString(kvCount) + " cannot fit in the file", countsAt + 8);
        }

        Map<String, Object> metadata = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            long at = in.position();
            String key = in.string("metadata key #" + i);
            long type = in.u32("value type of " + key);
            Object value = GgufValueReader.readValue(in, type, key, 0);
            if (metadata.put(key, value) != null) {
                throw new MalformedModelException("duplicate metadata key " + key, at);
            }
        }

        int alignment = DEFAULT_ALIGNMENT;
        Object alignValue = metadata.get("general.alignment");
        if (alignValue != null) {
            if (!(alignValue instanceof Long a) || a <= 0 || a > (1 << 30) || Long.bitCount(a) != 1) {
                throw new MalformedModelException("general.alignment must be a positive power of two, got " + alignValue, -1);
            }
            alignment = (int) (long) (Long) alignValue;
        }

        Map<String, GgufTensorInfo> tensors = new LinkedHashMap<>();
        for (long i = 0; i < tensorCount; i++) {
            long at = in.position();
            String name = in.string("name of tensor #" + i);
            long nDims = in.u32("dimension count of " + name);
            if (nDims < 1 || nDims > 4) {
                throw new MalformedModelException("tensor " + name + " has " + nDims + " dimensions (1 to 4 allowed)", at);
            }
            long[] dims = new long[(int) nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++) {
                long dimAt = in.position();
                dims[d] = in.i64("dimension " + d + " of " + name);
                if (dims[d] <= 0) {
                    throw new MalformedModelException("tensor " + name + " dimension " + d + " is " + Long.toUnsignedString(dims[d]), dimAt);
                }
                try {
                    elements = Math.multiplyExact(elements, dims[d]);
                } catch (ArithmeticException e) {
                    throw new MalformedModelException("tensor " + name + " element count overflows", dimAt);
                }
            }
            long typeAt = in.position();
            long typeId = in.u32("type of " + name);
            GgmlType type = GgmlType.byId(typeId);
            if (type == null) {
                throw new MalformedModelException("tensor " + name + " has unknown ggml type " + typeId, typeAt);
            }
            if (dims[0] % type.blockSize() != 0) {
                throw new MalformedModelException("tensor " + name + " row length " + dims[0] + " is not a multiple of the "
                        + type + " block size " + type.blockSize(), at);
            }
            long offsetAt = in.position();
            long offset = in.i64("data offset of " + name);
            if (offset < 0 || offset % alignment != 0) {
                throw new MalformedModelException("tensor " + name + " data offset " + Long.toUnsignedString(offset)
                        + " is not a non-negative multiple of the alignment " + alignment, offsetAt);
            }
            GgufTensorInfo info = new GgufTensorInfo(name, type, dims, offset, type.bytesFor(elements));
            if (tensors.put(name, info) != null) {
                throw new MalformedModelException("duplicate tensor name " + name, at);
            }
        }

        long dataStart = alignUp(in.position(), alignment);
        checkLayout(tensors, dataStart, in.fileSize());
        return new GgufFile(path, channel, (int) version, Collections.unmodifiableMap(metadata),
                Collections.unmodifiableMap(tensors), dataStart, alignment);
    }

    private static long alignUp(long value, int alignment) {
        return (value + alignment - 1) / alignment * alignment;
    }

    /** Tensor data must lie inside the data section and no two tensors may share bytes. */
    private static void checkLayout(Map<String, GgufTensorInfo> tensors, long dataStart, long fileSize) throws MalformedModelException {
        List<GgufTensorInfo> byOffset = new ArrayList<>(tensors.values());
        byOffset.sort(Comparator.comparingLong(GgufTensorInfo::offset));
        GgufTensorInfo previous = null;
        for (GgufTensorInfo t : byOffset) {
            long start = dataStart + t.offset();
            if (start > fileSize || t.byteSize() > fileSize - start) {
                throw new MalformedModelException("data of tensor " + t.name() + " (" + t.byteSize() + " bytes of " + t.type()
                        + " for dims " + java.util.Arrays.toString(t.dims()) + ") runs beyond the end of the file (size "
                        + fileSize + ")", start);
            }
            if (previous != null && previous.offset() + previous.byteSize() > t.offset()) {
                throw new MalformedModelException("data of tensor " + t.name() + " overlaps tensor " + previous.name()
                        + " (which ends at data offset " + (previous.offset() + previous.byteSize()) + ")", start);
            }
            previous = t;
        }
    }

    public Path path() {
        return path;
    }

    /** The GGUF version (2 or 3). */
    public int version() {
        return version;
    }

    /** Byte alignment of tensor data. */
    public int alignment() {
        return alignment;
    }

    /** File offset where the data section begins. */
    public long dataStart() {
        return dataStart;
    }

    /** All metadata, in file order. */
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** All tensors, in file order. */
    public Map<String, GgufTensorInfo> tensors() {
        return tensors;
    }

    public boolean hasTensor(String name) {
        return tensors.containsKey(name);
    }

    public GgufTensorInfo tensor(String name) {
        GgufTensorInfo t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException("no tensor " + name + " in " + path);
        return t;
    }

    private Object require(String key) {
        Object v = metadata.get(key);
        if (v == null) throw new IllegalArgumentException("no metadata key " + key + " in " + path);
        return v;
    }

    private <T> T typed(String key, Class<T> type) {
        Object v = require(key);
        if (!type.isInstance(v)) {
            throw new IllegalArgumentException("metadata " + key + " is " + v.getClass().getSimpleName() + ", not " + type.getSimpleName());
        }
        return type.cast(v);
    }

    public String getString(String key) {
        return typed(key, String.class);
    }

    public long getLong(String key) {
        return typed(key, Long.class);
    }

    public int getInt(String key) {
        return Math.toIntExact(getLong(key));
    }

    public double getDouble(String key) {
        return typed(key, Double.class);
    }

    public String[] getStringArray(String key) {
        return typed(key, String[].class);
    }

    public long[] getLongArray(String key) {
        return typed(key, long[].class);
    }

    public double[] getDoubleArray(String key) {
        return typed(key, double[].class);
    }

    /**
     * The tensor's bytes, memory-mapped read-only (little-endian order, position 0). Throws
     * {@link UnsupportedOperationException} for a tensor of 2 GB or more.
     */
    public ByteBuffer map(String name) throws IOException {
        GgufTensorInfo t = tensor(name);
        if (t.byteSize() > Integer.MAX_VALUE) {
            throw new UnsupportedOperationException("tensor " + name + " has " + t.byteSize() + " bytes; one mapping holds at most 2 GB");
        }
        return channel.map(FileChannel.MapMode.READ_ONLY, dataStart + t.offset(), t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The tensor converted to float32, row-major with {@code dims[0]} innermost. */
    public float[] readFloats(String name) throws IOException {
        GgufTensorInfo t = tensor(name);
        long n = t.elementCount();
        if (n > Integer.MAX_VALUE - 8) throw new UnsupportedOperationException("tensor " + name + " has too many elements for a float[]");
        float[] out = new float[(int) n];
        ByteBuffer data = map(name);
        int rowLength = (int) t.columns();
        long rowBytes = t.type().bytesFor(rowLength);
        int rows = (int) t.rows();
        // large tensors are decoded in parallel, one chunk of rows per task
        java.util.stream.IntStream.range(0, (rows + 63) / 64).parallel().forEach(chunk -> {
            int first = chunk * 64;
            int last = Math.min(rows, first + 64);
            GgmlDequantizer.dequantize(t.type(), data, first * rowBytes, out, first * rowLength, (last - first) * rowLength);
        });
        return out;
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
