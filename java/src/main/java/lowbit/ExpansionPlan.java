package lowbit;

import java.util.Objects;

/**
 * A channel-expansion (flatten) plan resident in a {@link Context}: for each of {@link #outCols()}
 * expanded columns, the source column of the input it reads and the float multiplier it applies,
 * {@code x'[r][j] = x[r][sourceIndex[j]] × multiplier[j]}. FlattenQuant splits a channel whose
 * magnitude exceeds its threshold into k adjacent copies with multiplier 1/k (times a smoothing
 * factor); an identity plan expands nothing. Built by {@link Context#uploadPlan}; executed by
 * {@link Context#flattenQuantizeInto} in one pass with the quantization.
 */
public final class ExpansionPlan implements AutoCloseable {
    private final Tensor sourceIndex;
    private final Tensor multiplier;
    private final long sourceCols;

    ExpansionPlan(Tensor sourceIndex, Tensor multiplier, long sourceCols) {
        this.sourceIndex = Objects.requireNonNull(sourceIndex);
        this.multiplier = Objects.requireNonNull(multiplier);
        this.sourceCols = sourceCols;
    }

    /** Columns of the input the plan reads. */
    public long sourceCols() {
        return sourceCols;
    }

    /** Columns after expansion (K'). */
    public long outCols() {
        return sourceIndex.cols();
    }

    Tensor sourceIndex() {
        return sourceIndex;
    }

    Tensor multiplier() {
        return multiplier;
    }

    @Override
    public void close() {
        sourceIndex.close();
        multiplier.close();
    }
}
