package lowbit;

import java.util.Objects;

/**
 * A channel-expansion (flatten) plan resident in a {@link Context}: for each of {@link #outCols()}
 * expanded columns, the source column of the input it reads and the float multiplier it applies,
 * {@code x'[r][j] = x[r][sourceIndex[j]] × multiplier[j]}. FlattenQuant splits a channel whose
 * magnitude exceeds its threshold into k copies with multiplier 1/k (times a smoothing factor);
 * its plans ({@code lowbit.quant.FlattenPlan}) keep the first copy of column j at j and append the
 * extra copies after the input's last column (plans of files written before that order have the
 * copies of a column adjacent instead); any order is accepted. An identity plan expands nothing.
 * The plan remembers how many of its leading entries are {@code sourceIndex[j] = j} ({@link
 * #identityPrefix()}), which the CUDA backend uses to pick its kernel.
 * Built by {@link Context#uploadPlan}; executed by {@link Context#flattenQuantizeInto} in one pass
 * with the quantization.
 */
public final class ExpansionPlan implements AutoCloseable {
    private final Tensor sourceIndex;
    private final Tensor multiplier;
    private final long sourceCols;
    private final long identityPrefix;

    /** A plan whose identity prefix is unknown (0): every kernel choice stays correct. */
    ExpansionPlan(Tensor sourceIndex, Tensor multiplier, long sourceCols) {
        this(sourceIndex, multiplier, sourceCols, 0);
    }

    ExpansionPlan(Tensor sourceIndex, Tensor multiplier, long sourceCols, long identityPrefix) {
        this.sourceIndex = Objects.requireNonNull(sourceIndex);
        this.multiplier = Objects.requireNonNull(multiplier);
        this.sourceCols = sourceCols;
        this.identityPrefix = identityPrefix;
    }

    /** How many leading entries read their own column ({@code sourceIndex[j] = j}), at most {@link #sourceCols()}. */
    public long identityPrefix() {
        return identityPrefix;
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
