package lowbit;

/** Element types of {@link Tensor}s; codes match {@code enum lowbit_dtype} in {@code lowbit.h}. */
public enum DType {
    F32(0, 32),
    F16(1, 16),
    BF16(2, 16),
    S8(3, 8),
    /** Signed 4-bit, packed two per byte along a row, element 2i in the low nibble. */
    S4(4, 4),
    S32(5, 32);

    final int code;
    final int bits;

    DType(int code, int bits) {
        this.code = code;
        this.bits = bits;
    }

    public int bits() {
        return bits;
    }

    boolean isFloat() {
        return this == F32 || this == F16 || this == BF16;
    }

    /** Bytes spanned by {@code elements} consecutive elements (rounded up for S4). */
    long bytesFor(long elements) {
        return this == S4 ? (elements + 1) / 2 : elements * (bits / 8);
    }
}
