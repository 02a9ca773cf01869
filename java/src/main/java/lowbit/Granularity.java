package lowbit;

/** Which elements of a matrix share one quantization scale. */
public enum Granularity {
    /** One scale for the whole matrix. */
    PER_TENSOR(0),
    /** One scale per row: per token of an activation, per output channel of a weight. */
    PER_ROW(1),
    /** One scale per column: per input channel of an activation. */
    PER_COLUMN(2),
    /** One scale per group of {@code group} consecutive columns of a row. */
    PER_GROUP(3);

    final int code;

    Granularity(int code) {
        this.code = code;
    }

    /** Number of scales for a {@code rows × cols} matrix. */
    public long scaleCount(long rows, long cols, int group) {
        switch (this) {
            case PER_TENSOR:
                return 1;
            case PER_ROW:
                return rows;
            case PER_COLUMN:
                return cols;
            default:
                if (group <= 0 || cols % group != 0) {
                    throw new IllegalArgumentException(
                            "group size " + group + " does not divide the " + cols + " columns");
                }
                return rows * (cols / group);
        }
    }
}
