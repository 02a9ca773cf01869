package lowbit;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import lowbit.bridge.LowbitNative;
import lowbit.bridge.lowbit_buffer;
import lowbit.bridge.lowbit_context;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;

/**
 * A context and buffers through the raw C ABI, for tests that call {@code lowbit.h} directly
 * (strides, unchecked inputs, validation messages the Java API never lets through). Every call is
 * asserted to succeed, naming the native error; {@link #close} frees everything.
 */
final class RawContext implements AutoCloseable {
    final lowbit_context ctx = new lowbit_context();
    private final List<lowbit_buffer> buffers = new ArrayList<>();

    /** A context of {@code backend} ({@code LOWBIT_BACKEND_CPU} or {@code _CUDA}), device 0. */
    RawContext(int backend) {
        Lowbit.ensureLoaded();
        assertEquals(0, LowbitNative.lowbit_context_create(backend, 0, ctx), error());
    }

    /** A CPU context held at ISA level {@code isa}. */
    static RawContext cpu(int isa) {
        RawContext r = new RawContext(LowbitNative.LOWBIT_BACKEND_CPU);
        assertEquals(0, LowbitNative.lowbit_context_set_cpu_isa(r.ctx, isa), error());
        return r;
    }

    /** A buffer holding {@code data} (null: none). */
    lowbit_buffer bytes(byte[] data) {
        if (data == null) return null;
        lowbit_buffer b = alloc(data.length);
        try (BytePointer p = new BytePointer(data)) {
            assertEquals(0, LowbitNative.lowbit_buffer_write(b, 0, p, data.length), error());
        }
        return b;
    }

    /** A buffer holding {@code data} (null: none). */
    lowbit_buffer floats(float[] data) {
        if (data == null) return null;
        lowbit_buffer b = alloc(4L * data.length);
        try (FloatPointer p = new FloatPointer(data)) {
            assertEquals(0, LowbitNative.lowbit_buffer_write(b, 0, p, 4L * data.length), error());
        }
        return b;
    }

    float[] readFloats(lowbit_buffer b, int count) {
        try (FloatPointer p = new FloatPointer(count)) {
            assertEquals(0, LowbitNative.lowbit_buffer_read(b, 0, p, 4L * count), error());
            float[] out = new float[count];
            p.get(out);
            return out;
        }
    }

    byte[] read(lowbit_buffer b, int bytes) {
        try (BytePointer p = new BytePointer(bytes)) {
            assertEquals(0, LowbitNative.lowbit_buffer_read(b, 0, p, bytes), error());
            byte[] out = new byte[bytes];
            p.get(out);
            return out;
        }
    }

    private lowbit_buffer alloc(long bytes) {
        lowbit_buffer b = new lowbit_buffer();
        assertEquals(0, LowbitNative.lowbit_buffer_alloc(ctx, Math.max(1, bytes), b), error());
        buffers.add(b);
        return b;
    }

    /** The calling thread's last native error message. */
    static String error() {
        return LowbitNative.lowbit_last_error().getString();
    }

    @Override
    public void close() {
        buffers.forEach(LowbitNative::lowbit_buffer_free);
        LowbitNative.lowbit_context_destroy(ctx);
    }
}
