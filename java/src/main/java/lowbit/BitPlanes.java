package lowbit;

/**
 * The bit-plane operand layout of {@code lowbit.h} ({@code lowbit_bitplane_*}) in Java: the offline
 * packer for integer codes (weights) and its inverse.
 *
 * <p>A {@code bits}-bit matrix of {@code rows × cols} integer codes is stored as {@code bits} binary
 * planes of little-endian 64-bit words along the columns: word {@code w} of plane {@code i} of row
 * {@code r} is word {@code (r·bits + i)·ld + w} and holds bit {@code i} of the codes of columns
 * {@code 64w … 64w+63} (column {@code 64w + b} in bit {@code b}); {@code ld = }{@link #ld} is even, and
 * every bit of a column ≥ {@code cols} is 0. In Java (and in an {@link DType#S32} tensor) a word is
 * two ints, low half first. Codes are unsigned ({@code 0 … 2^bits − 1}) or signed two's complement
 * ({@code −2^(bits−1) … 2^(bits−1) − 1}).
 */
public final class BitPlanes {
    private BitPlanes() {}

    /** The plane leading dimension for {@code cols} columns: {@code 2·ceil(cols/128)} words. */
    public static int ld(long cols) {
        if (cols <= 0 || cols > (1L << 23)) {
            throw new IllegalArgumentException("bit-plane operands need 1..2^23 columns, got " + cols);
        }
        return (int) (2 * ((cols + 127) / 128));
    }

    /** Smallest and largest code of a {@code bits}-bit operand. */
    public static int minCode(int bits, boolean signed) {
        checkBits(bits);
        return signed ? -(1 << (bits - 1)) : 0;
    }

    public static int maxCode(int bits, boolean signed) {
        checkBits(bits);
        return signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    }

    static void checkBits(int bits) {
        if (bits < 1 || bits > 8) {
            throw new IllegalArgumentException("bit-plane operands have 1..8 bits, got " + bits);
        }
    }

    /**
     * Packs {@code codes} (row-major {@code rows × cols}) into planes: {@code rows·bits·ld(cols)} words
     * as {@code 2·} that many ints. Every code must lie in the operand's range.
     */
    public static int[] pack(int[] codes, int rows, int cols, int bits, boolean signed) {
        checkShape(codes, rows, cols);
        int lo = minCode(bits, signed), hi = maxCode(bits, signed);
        int ld = ld(cols);
        long words = (long) rows * bits * ld;
        if (2 * words > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(rows + " x " + cols + " codes of " + bits + " bits are too many for one array");
        }
        int[] out = new int[(int) (2 * words)];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int v = codes[r * cols + c];
                if (v < lo || v > hi) {
                    throw new IllegalArgumentException("code " + v + " at (" + r + ", " + c + ") is outside the "
                            + (signed ? "signed" : "unsigned") + " " + bits + "-bit range [" + lo + ", " + hi + "]");
                }
                int w = c >>> 6, b = c & 63;
                for (int i = 0; i < bits; i++) {
                    if (((v >>> i) & 1) != 0) {
                        int word = (r * bits + i) * ld + w;
                        out[2 * word + (b >>> 5)] |= 1 << (b & 31);
                    }
                }
            }
        }
        return out;
    }

    /**
     * The codes held in packed planes (inverse of {@link #pack}); throws when a padding bit (column ≥
     * {@code cols}) is set.
     */
    public static int[] unpack(int[] planes, int rows, int cols, int bits, boolean signed) {
        checkBits(bits);
        int ld = ld(cols);
        if (planes.length != 2L * rows * bits * ld) {
            throw new IllegalArgumentException("planes hold " + planes.length + " ints, " + rows + " x " + cols + " at "
                    + bits + " bits need " + 2L * rows * bits * ld);
        }
        int[] codes = new int[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < bits; i++) {
                for (int w = 0; w < ld; w++) {
                    int word = (r * bits + i) * ld + w;
                    long v = (planes[2 * word] & 0xFFFFFFFFL) | ((long) planes[2 * word + 1] << 32);
                    for (int b = 0; b < 64; b++) {
                        if (((v >>> b) & 1) == 0) {
                            continue;
                        }
                        int c = w * 64 + b;
                        if (c >= cols) {
                            throw new IllegalStateException("padding bit set: row " + r + ", plane " + i + ", column " + c);
                        }
                        codes[r * cols + c] |= 1 << i;
                    }
                }
            }
            if (signed) {
                for (int c = 0; c < cols; c++) {
                    int v = codes[r * cols + c];
                    codes[r * cols + c] = (v << (32 - bits)) >> (32 - bits);  // sign-extend
                }
            }
        }
        return codes;
    }

    /** Per-row sums of the codes (the {@code sums} operand of {@code lowbit_bitplane_gemm}). */
    public static int[] rowSums(int[] codes, int rows, int cols) {
        checkShape(codes, rows, cols);
        int[] s = new int[rows];
        for (int r = 0; r < rows; r++) {
            long t = 0;
            for (int c = 0; c < cols; c++) {
                t += codes[r * cols + c];
            }
            s[r] = Math.toIntExact(t);
        }
        return s;
    }

    private static void checkShape(int[] codes, int rows, int cols) {
        if (rows <= 0 || cols <= 0) {
            throw new IllegalArgumentException("shape must be positive, got " + rows + " x " + cols);
        }
        ld(cols);
        if (codes.length != (long) rows * cols) {
            throw new IllegalArgumentException("a " + rows + " x " + cols + " matrix needs " + (long) rows * cols
                    + " codes, got " + codes.length);
        }
    }
}
