package lowbit.model;

/**
 * The keys and values of every layer for the tokens processed so far in one sequence. Create one
 * per sequence with {@link LlamaModel#newKvCache}; {@link #length()} is the number of positions
 * filled, and {@link #reset()} starts a new sequence reusing the memory.
 */
public final class KvCache {
    final float[][] keys;
    final float[][] values;
    private final int capacity;
    private final int kvDim;
    private int length;

    KvCache(int layers, int capacity, int kvDim) {
        this.capacity = capacity;
        this.kvDim = kvDim;
        this.keys = new float[layers][capacity * kvDim];
        this.values = new float[layers][capacity * kvDim];
    }

    /** Positions filled. */
    public int length() {
        return length;
    }

    /** Positions this cache can hold. */
    public int capacity() {
        return capacity;
    }

    /** Forgets all positions. */
    public void reset() {
        length = 0;
    }

    void store(int layer, int firstPos, float[] k, float[] v, int tokens) {
        System.arraycopy(k, 0, keys[layer], firstPos * kvDim, tokens * kvDim);
        System.arraycopy(v, 0, values[layer], firstPos * kvDim, tokens * kvDim);
    }

    void advance(int tokens) {
        length += tokens;
    }
}
