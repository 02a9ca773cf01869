package lowbit;

import org.bytedeco.javacpp.FloatPointer;

/**
 * A per-thread native buffer for small host transfers. Allocating a JavaCPP pointer per call (a
 * native allocation plus the registration of its deallocator) costs more than the copy itself at
 * decode sizes (a few thousand floats); reusing one buffer per thread removes that from every
 * layer of every token. Transfers above {@link #MAX_FLOATS} use their own temporary buffer, so a
 * thread never keeps more than 1 MiB. The buffer lives as long as its thread; it holds no data
 * between calls.
 */
final class HostStaging {
    static final int MAX_FLOATS = 1 << 18;

    private static final ThreadLocal<FloatPointer> FLOATS = new ThreadLocal<>();

    private HostStaging() {}

    /** A native buffer of at least {@code n} floats owned by this thread, or null when {@code n} is too large to stage. */
    static FloatPointer floats(int n) {
        if (n > MAX_FLOATS) return null;
        FloatPointer p = FLOATS.get();
        if (p == null || p.capacity() < n) {
            if (p != null) p.close();
            // grow geometrically to the cap, so a few calls settle on one buffer
            long size = Math.min(MAX_FLOATS, Math.max(n, p == null ? 4096 : 2 * p.capacity()));
            p = new FloatPointer(size);
            FLOATS.set(p);
        }
        p.position(0);
        return p;
    }
}
