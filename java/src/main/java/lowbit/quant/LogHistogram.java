package lowbit.quant;

import java.util.Arrays;

/**
 * A fixed-size, mergeable quantile sketch of |x|: a histogram whose bins are log-spaced.
 *
 * <p>Bins: one underflow bin for |x| < 2^minExp (zero included), {@code (maxExp - minExp) * b}
 * regular bins, one overflow bin for |x| >= 2^maxExp. A regular bin is an octave {@code [2^e,
 * 2^(e+1))} cut into {@code b} equal parts (b a power of two), i.e. the float's exponent and its
 * top {@code log2 b} mantissa bits, so binning is a couple of bit operations. Every regular bin
 * {@code [lo, hi)} has {@code hi - lo <= lo / b}.
 *
 * <p>Error: counts are exact, so a quantile's rank is exact; its value is reported as the bin's
 * midpoint (clamped to the exact max seen), within {@code (hi - lo)/2 <= v/(2b)} of the true
 * nearest-rank order statistic {@code v}: relative error at most {@code 1/(2b)}. Underflow-bin
 * answers are 0 (absolute error below 2^minExp); overflow-bin answers are the exact max.
 */
final class LogHistogram {
    final int log2Bins;
    final int minExp;
    final int maxExp;
    final int[] counts;
    long total;
    float max;

    LogHistogram(int binsPerOctave, int minExp, int maxExp) {
        if (binsPerOctave < 1 || binsPerOctave > 1 << 16 || Integer.bitCount(binsPerOctave) != 1) {
            throw new IllegalArgumentException("bins per octave must be a power of two in [1, 65536], got " + binsPerOctave);
        }
        if (minExp < -126 || maxExp > 127 || minExp >= maxExp) {
            throw new IllegalArgumentException("sketch exponent range [" + minExp + ", " + maxExp + ") must lie in [-126, 127] and be non-empty");
        }
        this.log2Bins = Integer.numberOfTrailingZeros(binsPerOctave);
        this.minExp = minExp;
        this.maxExp = maxExp;
        this.counts = new int[2 + (maxExp - minExp) * binsPerOctave];
    }

    int binsPerOctave() {
        return 1 << log2Bins;
    }

    /** Relative error bound of {@link #quantile} for answers from regular bins. */
    double relativeError() {
        return 1.0 / (2 * binsPerOctave());
    }

    int binOf(float absX) {
        int e = Math.getExponent(absX);
        if (e < minExp) {
            return 0;
        }
        if (e >= maxExp) {
            return counts.length - 1;
        }
        int mantissaTop = (Float.floatToRawIntBits(absX) & 0x7FFFFF) >>> (23 - log2Bins);
        return 1 + ((e - minExp) << log2Bins) + mantissaTop;
    }

    /** Adds one finite |x|. */
    void add(float absX) {
        int bin = binOf(absX);
        if (counts[bin] == Integer.MAX_VALUE) {
            throw new IllegalStateException("quantile sketch bin overflow after " + total + " values");
        }
        counts[bin]++;
        total++;
        if (absX > max) {
            max = absX;
        }
    }

    boolean sameLayout(LogHistogram o) {
        return o.log2Bins == log2Bins && o.minExp == minExp && o.maxExp == maxExp;
    }

    void merge(LogHistogram o) {
        if (!sameLayout(o)) {
            throw new IllegalArgumentException("cannot merge sketches with different bins: " + describe() + " vs " + o.describe());
        }
        for (int i = 0; i < counts.length; i++) {
            counts[i] = Math.addExact(counts[i], o.counts[i]);
        }
        total += o.total;
        max = Math.max(max, o.max);
    }

    String describe() {
        return binsPerOctave() + " bins/octave over [2^" + minExp + ", 2^" + maxExp + ")";
    }

    /** Nearest-rank q-quantile of |x|, {@code 0 <= q <= 1}; see the class comment for the error. */
    double quantile(double q) {
        if (!(q >= 0 && q <= 1)) {
            throw new IllegalArgumentException("quantile must be in [0, 1], got " + q);
        }
        if (total == 0) {
            throw new IllegalStateException("quantile of an empty sketch: no values were observed");
        }
        long rank = Math.max(1, (long) Math.ceil(q * total));
        long seen = 0;
        for (int i = 0; i < counts.length; i++) {
            seen += counts[i];
            if (seen >= rank) {
                if (i == 0) {
                    return 0.0;
                }
                if (i == counts.length - 1) {
                    return max;
                }
                int b = binsPerOctave();
                int e = minExp + ((i - 1) >> log2Bins);
                int sub = (i - 1) & (b - 1);
                double lo = Math.scalb(1.0 + (double) sub / b, e);
                double hi = Math.scalb(1.0 + (double) (sub + 1) / b, e);
                return Math.min((lo + hi) / 2, max);
            }
        }
        return max;
    }

    LogHistogram copy() {
        LogHistogram h = new LogHistogram(binsPerOctave(), minExp, maxExp);
        System.arraycopy(counts, 0, h.counts, 0, counts.length);
        h.total = total;
        h.max = max;
        return h;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LogHistogram h && sameLayout(h) && h.total == total && h.max == max
                && Arrays.equals(h.counts, counts);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(counts) * 31 + Long.hashCode(total);
    }
}
