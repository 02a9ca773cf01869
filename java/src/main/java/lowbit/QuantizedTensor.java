package lowbit;

import java.util.Objects;

/**
 * Integer values with their float32 scales: {@code x ≈ values × scale} with the scale of each
 * element chosen by {@link #granularity()}. Closing it closes both tensors.
 */
public final class QuantizedTensor implements AutoCloseable {
    private final Tensor values;
    private final Tensor scales;
    private final Granularity granularity;
    private final int group;

    /**
     * @param values S8 or S4 tensor
     * @param scales F32 tensor of {@code granularity.scaleCount(rows, cols, group)} elements
     */
    public QuantizedTensor(Tensor values, Tensor scales, Granularity granularity, int group) {
        this.values = Objects.requireNonNull(values, "values");
        this.scales = Objects.requireNonNull(scales, "scales");
        this.granularity = Objects.requireNonNull(granularity, "granularity");
        if (values.dtype() != DType.S8 && values.dtype() != DType.S4) {
            throw new IllegalArgumentException("quantized values must be S8 or S4, got " + values.dtype());
        }
        if (scales.dtype() != DType.F32) {
            throw new IllegalArgumentException("scales must be F32, got " + scales.dtype());
        }
        long need = granularity.scaleCount(values.rows(), values.cols(), group);
        if (scales.elementCount() != need) {
            throw new IllegalArgumentException(
                    granularity + " scales of a " + values.rows() + " x " + values.cols() + " tensor need " + need
                            + " elements, got " + scales.elementCount());
        }
        this.group = granularity == Granularity.PER_GROUP ? group : 0;
    }

    public Tensor values() {
        return values;
    }

    public Tensor scales() {
        return scales;
    }

    public Granularity granularity() {
        return granularity;
    }

    /** Group size for {@link Granularity#PER_GROUP}, else 0. */
    public int group() {
        return group;
    }

    public int bits() {
        return values.dtype().bits();
    }

    @Override
    public void close() {
        values.close();
        scales.close();
    }
}
