package lowbit;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Lifetime of one native handle, shared by {@link Context} and {@link Tensor}.
 *
 * <p>Operations {@link #acquire()} every resource they pass to native code and {@link #release()} it
 * afterwards. {@link #close()} may come from any thread at any time and any number of times: the
 * native handle is freed exactly once, when the resource is closed and no operation holds it any
 * more, so a close racing an operation never frees memory under native code. A resource that is
 * never closed is freed by a {@link Cleaner} once unreachable.
 */
abstract class NativeResource implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();
    private static final long CLOSED = Long.MIN_VALUE;

    /** Users in the low bits, {@link #CLOSED} in the sign bit. */
    private final AtomicLong state = new AtomicLong();

    private final Cleaner.Cleanable cleanable;
    private final String description;

    /** @param free frees the native handle; must not refer to this object */
    NativeResource(Runnable free, String description) {
        this.cleanable = CLEANER.register(this, free);
        this.description = description;
    }

    final void acquire() {
        for (; ; ) {
            long s = state.get();
            if (s < 0) {
                throw new IllegalStateException(description + " is closed");
            }
            if (state.compareAndSet(s, s + 1)) {
                return;
            }
        }
    }

    final void release() {
        if (state.decrementAndGet() == CLOSED) {
            cleanable.clean();
        }
    }

    public final boolean isClosed() {
        return state.get() < 0;
    }

    /** Frees the native memory (now, or when the last running operation on it returns). */
    @Override
    public final void close() {
        for (; ; ) {
            long s = state.get();
            if (s < 0) {
                return;
            }
            if (state.compareAndSet(s, s | CLOSED)) {
                if (s == 0) {
                    cleanable.clean();
                }
                return;
            }
        }
    }

    String description() {
        return description;
    }

    /** Holds several resources for the duration of one native call. */
    static final class Lease implements AutoCloseable {
        private final NativeResource[] held;
        private int count;

        Lease(NativeResource... resources) {
            held = new NativeResource[resources.length];
            try {
                for (NativeResource r : resources) {
                    if (r != null) {
                        r.acquire();
                        held[count++] = r;
                    }
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        @Override
        public void close() {
            while (count > 0) {
                held[--count].release();
            }
        }
    }
}
