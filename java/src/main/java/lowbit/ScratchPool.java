package lowbit;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Iterator;
import java.util.function.IntFunction;

/**
 * Per-layer native scratch (activations, quantized activations, output) kept between calls with
 * the same token count, for layer implementations: a decode step then allocates no native memory,
 * and prefill, decode and perplexity chunks each keep their own set. A set is taken out for the
 * duration of one call, so concurrent calls get different sets (a new one when none is free); the
 * {@link #capacity} most recently returned sets are kept, older ones freed. {@link #close} frees
 * all pooled sets; a set returned after that is freed at once, and {@link #take} throws.
 *
 * @param <S> one call's scratch set
 */
public final class ScratchPool<S extends ScratchPool.Scratch> implements AutoCloseable {
    /** A scratch set for calls of {@link #tokens} rows. */
    public interface Scratch extends AutoCloseable {
        int tokens();

        @Override
        void close();
    }

    private final Deque<S> pool = new ArrayDeque<>();
    private final int capacity;
    private final IntFunction<S> create;
    private boolean closed;

    /** @param create allocates a set for a token count (on the calling thread, outside the pool's lock) */
    public ScratchPool(int capacity, IntFunction<S> create) {
        if (capacity < 1) throw new IllegalArgumentException("capacity must be >= 1, got " + capacity);
        this.capacity = capacity;
        this.create = create;
    }

    /** A pooled set for {@code tokens} rows, or a new one. */
    public S take(int tokens) {
        synchronized (pool) {
            if (closed) throw new IllegalStateException("the layer is closed");
            for (Iterator<S> it = pool.iterator(); it.hasNext(); ) {
                S s = it.next();
                if (s.tokens() == tokens) {
                    it.remove();
                    return s;
                }
            }
        }
        return create.apply(tokens);
    }

    /** Returns a set after a call that completed; a call that failed should close its set instead. */
    public void give(S s) {
        S evicted = null;
        synchronized (pool) {
            if (closed) {
                evicted = s;
            } else {
                pool.addFirst(s);
                if (pool.size() > capacity) evicted = pool.removeLast();
            }
        }
        if (evicted != null) evicted.close();
    }

    /** Sets currently pooled. */
    public int size() {
        synchronized (pool) {
            return pool.size();
        }
    }

    @Override
    public void close() {
        synchronized (pool) {
            closed = true;
            for (S s : pool) s.close();
            pool.clear();
        }
    }
}
