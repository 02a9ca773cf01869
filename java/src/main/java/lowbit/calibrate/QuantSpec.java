package lowbit.calibrate;

import lowbit.Granularity;

/**
 * What a fake quantizer does: {@code bits}, symmetric (grid {@code −2^(b−1) .. 2^(b−1)−1}, scale
 * {@code amax / (2^(b−1)−1)}) or asymmetric (grid {@code 0 .. 2^b−1} with a rounded zero-point,
 * scale {@code (max − min)/(2^b−1)}), and which elements share a scale: {@link
 * Granularity#PER_TENSOR}, {@link Granularity#PER_ROW} (per output channel of a weight, per token of
 * an activation) or {@link Granularity#PER_GROUP} ({@code groupSize} consecutive elements of a row).
 * {@code bitBalance} (asymmetric only, ABQ-LLM's ≤ 2-bit grid): {@code 2^b + 1} levels {@code 0 ..
 * 2^b}, scale {@code (max − min)/2^b}, symmetric around the zero-point.
 */
public record QuantSpec(int bits, boolean symmetric, Granularity granularity, int groupSize, boolean bitBalance) {
    public QuantSpec {
        if (granularity == null || granularity == Granularity.PER_COLUMN) {
            throw new IllegalArgumentException("granularity must be PER_TENSOR, PER_ROW or PER_GROUP, got " + granularity);
        }
        if (bits < (symmetric ? 2 : 1) || bits > 16) throw new IllegalArgumentException(bits + " bits: expected " + (symmetric ? 2 : 1) + "..16");
        if (granularity == Granularity.PER_GROUP ? groupSize < 1 : groupSize != 0) {
            throw new IllegalArgumentException("group size " + groupSize + " with " + granularity + " (only PER_GROUP takes a positive group size)");
        }
        if (bitBalance && (symmetric || bits > 2)) throw new IllegalArgumentException("bit balance applies to asymmetric quantizers of 1 or 2 bits");
    }

    public static QuantSpec asymmetric(int bits, Granularity granularity) {
        return new QuantSpec(bits, false, granularity, 0, false);
    }

    public static QuantSpec symmetric(int bits, Granularity granularity) {
        return new QuantSpec(bits, true, granularity, 0, false);
    }

    public static QuantSpec grouped(int bits, boolean symmetric, int groupSize) {
        return new QuantSpec(bits, symmetric, Granularity.PER_GROUP, groupSize, false);
    }

    /** Elements per scale for a {@code rows × cols} matrix. */
    public int groupLength(int rows, int cols) {
        switch (granularity) {
            case PER_TENSOR:
                return rows * cols;
            case PER_ROW:
                return cols;
            default:
                if (cols % groupSize != 0) throw new IllegalArgumentException(cols + " columns are not whole groups of " + groupSize);
                return groupSize;
        }
    }

    /** Number of scales for a {@code rows × cols} matrix. */
    public int groupCount(int rows, int cols) {
        return rows * cols / groupLength(rows, cols);
    }

    /** Largest integer level. */
    int qmax() {
        return symmetric ? (1 << (bits - 1)) - 1 : bitBalance ? 1 << bits : (1 << bits) - 1;
    }

    /** Smallest integer level. */
    int qmin() {
        return symmetric ? -(1 << (bits - 1)) : 0;
    }
}
