package lowbit.quant;

import java.util.SplittableRandom;

/**
 * A uniform random sample of at most {@code capacity} token rows out of all rows seen (Vitter's
 * Algorithm R), so that threshold search can measure output error on real calibration activations
 * with memory {@code capacity * K} floats however long calibration runs. Seeded: the same stream
 * gives the same sample.
 */
final class TokenReservoir {
    final int capacity;
    final int width;
    final float[] rows;
    int size;
    long seen;
    private final SplittableRandom random;

    TokenReservoir(int capacity, int width, long seed) {
        if (capacity < 0) {
            throw new IllegalArgumentException("sample capacity must be >= 0, got " + capacity);
        }
        if ((long) capacity * width > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("sample of " + capacity + " tokens x " + width + " channels is too large");
        }
        this.capacity = capacity;
        this.width = width;
        this.rows = new float[capacity * width];
        this.random = new SplittableRandom(seed);
    }

    void offer(float[] x, int offset) {
        seen++;
        if (size < capacity) {
            System.arraycopy(x, offset, rows, size * width, width);
            size++;
            return;
        }
        long slot = random.nextLong(seen);
        if (slot < capacity) {
            System.arraycopy(x, offset, rows, (int) slot * width, width);
        }
    }

    /**
     * Merges another uniform sample: each output slot comes from this or the other reservoir with
     * probability proportional to the rows each has seen (a binomial approximation of the exact
     * hypergeometric split), drawing without replacement inside each.
     */
    void merge(TokenReservoir other) {
        if (other.width != width) {
            throw new ShapeMismatchException("cannot merge samples of " + width + " and " + other.width + " channels");
        }
        long totalSeen = seen + other.seen;
        int outSize = (int) Math.min(capacity, (long) size + other.size);
        float[] mine = rows.clone();
        int[] pickMine = shuffledIndices(size);
        int[] pickOther = shuffledIndices(other.size);
        int usedMine = 0;
        int usedOther = 0;
        for (int s = 0; s < outSize; s++) {
            boolean fromMine;
            if (usedMine == size) {
                fromMine = false;
            } else if (usedOther == other.size) {
                fromMine = true;
            } else {
                fromMine = random.nextLong(Math.max(1, totalSeen)) < seen;
            }
            if (fromMine) {
                System.arraycopy(mine, pickMine[usedMine++] * width, rows, s * width, width);
            } else {
                System.arraycopy(other.rows, pickOther[usedOther++] * width, rows, s * width, width);
            }
        }
        size = outSize;
        seen = totalSeen;
    }

    private int[] shuffledIndices(int n) {
        int[] idx = new int[n];
        for (int i = 0; i < n; i++) {
            idx[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        return idx;
    }
}
