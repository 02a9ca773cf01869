package lowbit.quant;

/**
 * The number format a linear layer runs in.
 *
 * <p>{@link #INT4} and {@link #INT8} quantize both operands symmetrically with {@code qmax =
 * 2^(bits-1) - 1} (7 or 127) and multiply them as an integer GEMM with exact int32 accumulation, as
 * FlattenQuant does (W4A4 and W8A8). {@link #FP16} is the last resort of the bit-width policy: the
 * layer is not quantized and keeps the model's floating-point weights.
 */
public enum Precision {
    INT4(4),
    INT8(8),
    FP16(16);

    private final int bits;

    Precision(int bits) {
        this.bits = bits;
    }

    /** Bits per weight and activation value: 4, 8 or 16. */
    public int bits() {
        return bits;
    }

    /** True for the integer formats. */
    public boolean isInteger() {
        return this != FP16;
    }
}
