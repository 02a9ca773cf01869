package lowbit;

import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.ShortPointer;

/**
 * A row-major {@code rows × cols} matrix in a {@link Context}'s memory (host memory for the CPU
 * backend, device memory for CUDA). Created by {@link Context#allocate}.
 *
 * <p>Host arrays mirror the native layout exactly: {@code rows × ld()} elements, where {@code ld()}
 * is {@code cols} except for {@link DType#S4}, whose rows are padded to an even element count and
 * packed two per byte (element {@code 2i} in the low nibble), so an S4 array has {@code rows ×
 * ld() / 2} bytes. F16 and BF16 travel as {@code short} bit patterns (see {@link Half}).
 *
 * <p>Close it when done (try-with-resources); closing twice is harmless, and closing while another
 * thread runs an operation on it frees the memory when that operation returns.
 */
public final class Tensor extends NativeResource {
    private final Context context;
    private final lowbit_buffer handle;
    private final DType dtype;
    private final long rows;
    private final long cols;
    private final long ld;

    Tensor(Context context, lowbit_buffer handle, DType dtype, long rows, long cols, long ld) {
        super(freeer(handle), dtype + " tensor " + rows + " x " + cols);
        this.context = context;
        this.handle = handle;
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.ld = ld;
    }

    private static Runnable freeer(lowbit_buffer handle) {
        return () -> LowbitNative.lowbit_buffer_free(handle);
    }

    public DType dtype() {
        return dtype;
    }

    public long rows() {
        return rows;
    }

    public long cols() {
        return cols;
    }

    /** Leading dimension in elements: the distance between the starts of two rows. */
    public long ld() {
        return ld;
    }

    public long elementCount() {
        return rows * cols;
    }

    /** Elements in the host-array form of this tensor ({@code rows × ld}). */
    public long storageElements() {
        return rows * ld;
    }

    /** Bytes of native memory this tensor's data spans. */
    public long storageBytes() {
        return dtype.bytesFor(rows * ld);
    }

    public Context context() {
        return context;
    }

    lowbit_buffer handle() {
        return handle;
    }

    // ---- host -> tensor ------------------------------------------------------------------------

    /**
     * Copies an F32 array of {@code rows × ld} elements in. Small tensors (the activations of a
     * decode step) go through a per-thread native staging buffer, so a call allocates nothing.
     */
    public Tensor copyFrom(float[] data) {
        expect(DType.F32, data.length, "float[]");
        FloatPointer staging = HostStaging.floats(data.length);
        if (staging != null) {
            staging.put(data, 0, data.length);
            write(staging);
            return this;
        }
        try (FloatPointer p = new FloatPointer(data)) {
            write(p);
        }
        return this;
    }

    /** Copies an F16 or BF16 array of bit patterns ({@code rows × ld} elements) in. */
    public Tensor copyFrom(short[] data) {
        if (dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalArgumentException("short[] data needs an F16 or BF16 tensor, this is " + dtype);
        }
        expectLength(data.length, "short[]");
        try (ShortPointer p = new ShortPointer(data)) {
            write(p);
        }
        return this;
    }

    /** Copies S8 values ({@code rows × ld}) or packed S4 bytes ({@code rows × ld / 2}) in. */
    public Tensor copyFrom(byte[] data) {
        if (dtype != DType.S8 && dtype != DType.S4) {
            throw new IllegalArgumentException("byte[] data needs an S8 or S4 tensor, this is " + dtype);
        }
        long expected = storageBytes();
        if (data.length != expected) {
            throw new IllegalArgumentException(
                    "byte[] of length " + data.length + " does not match " + description() + " (expected "
                            + expected + " bytes)");
        }
        try (BytePointer p = new BytePointer(data)) {
            write(p);
        }
        return this;
    }

    /** Copies an S32 array of {@code rows × ld} elements in. */
    public Tensor copyFrom(int[] data) {
        expect(DType.S32, data.length, "int[]");
        try (IntPointer p = new IntPointer(data)) {
            write(p);
        }
        return this;
    }

    // ---- tensor -> host ------------------------------------------------------------------------

    public float[] toFloatArray() {
        expect(DType.F32, storageElements(), "float[]");
        float[] out = new float[hostLength()];
        copyTo(out);
        return out;
    }

    /**
     * Copies this F32 tensor ({@code rows × ld} elements) into the first elements of {@code out},
     * which must hold at least that many; like {@link #copyFrom(float[])}, small tensors allocate
     * nothing.
     */
    public void copyTo(float[] out) {
        expect(DType.F32, storageElements(), "float[]");
        int n = hostLength();
        if (out.length < n) {
            throw new IllegalArgumentException("float[] of length " + out.length + " cannot hold " + description() + " (" + n + " elements)");
        }
        FloatPointer staging = HostStaging.floats(n);
        if (staging != null) {
            read(staging);
            staging.get(out, 0, n);
            return;
        }
        try (FloatPointer p = new FloatPointer(n)) {
            read(p);
            p.get(out, 0, n);
        }
    }

    public short[] toShortArray() {
        if (dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalArgumentException("short[] needs an F16 or BF16 tensor, this is " + dtype);
        }
        short[] out = new short[hostLength()];
        try (ShortPointer p = new ShortPointer(out.length)) {
            read(p);
            p.get(out);
        }
        return out;
    }

    public byte[] toByteArray() {
        if (dtype != DType.S8 && dtype != DType.S4) {
            throw new IllegalArgumentException("byte[] needs an S8 or S4 tensor, this is " + dtype);
        }
        byte[] out = new byte[Math.toIntExact(storageBytes())];
        try (BytePointer p = new BytePointer(out.length)) {
            read(p);
            p.get(out);
        }
        return out;
    }

    public int[] toIntArray() {
        expect(DType.S32, storageElements(), "int[]");
        int[] out = new int[hostLength()];
        try (IntPointer p = new IntPointer(out.length)) {
            read(p);
            p.get(out);
        }
        return out;
    }

    /** Copies all of {@code src} (same dtype and shape) into this tensor, within one context. */
    public Tensor copyFrom(Tensor src) {
        if (src.dtype != dtype || src.rows != rows || src.cols != cols || src.ld != ld) {
            throw new IllegalArgumentException("cannot copy " + src.description() + " into " + description());
        }
        if (src.context != context) {
            throw new IllegalArgumentException("tensors belong to different contexts");
        }
        try (Lease l = new Lease(this, src)) {
            Lowbit.check(LowbitNative.lowbit_buffer_copy(handle, 0, src.handle, 0, storageBytes()));
        }
        return this;
    }

    @Override
    public String toString() {
        return description() + (isClosed() ? " (closed)" : "") + " on " + context.backend();
    }

    private int hostLength() {
        long n = storageElements();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(description() + " is too large for one Java array");
        }
        return (int) n;
    }

    private void expect(DType wanted, long length, String kind) {
        if (dtype != wanted) {
            throw new IllegalArgumentException(kind + " data needs a " + wanted + " tensor, this is " + dtype);
        }
        expectLength(length, kind);
    }

    private void expectLength(long length, String kind) {
        if (length != storageElements()) {
            throw new IllegalArgumentException(
                    kind + " of length " + length + " does not match " + description() + " (expected "
                            + storageElements() + " elements)");
        }
    }

    private void write(Pointer p) {
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_buffer_write(handle, 0, p, storageBytes()));
        }
    }

    private void read(Pointer p) {
        try (Lease l = new Lease(this)) {
            Lowbit.check(LowbitNative.lowbit_buffer_read(handle, 0, p, storageBytes()));
        }
    }
}
