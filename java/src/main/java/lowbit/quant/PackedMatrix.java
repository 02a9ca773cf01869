package lowbit.quant;

/**
 * A row-major integer matrix in a lowbit.h operand layout. S8: one signed byte per element, leading
 * dimension {@code ld >= cols}. S4: two's-complement nibbles packed two per byte along the row,
 * element {@code c} in byte {@code r*ld/2 + c/2}, the low nibble when {@code c} is even; {@code ld}
 * counts elements and is even, so an odd row leaves its last high nibble 0.
 */
final class PackedMatrix {
    final int bits;
    final int rows;
    final int cols;
    final int ld;
    final byte[] data;

    private PackedMatrix(int bits, int rows, int cols, int ld, byte[] data) {
        this.bits = bits;
        this.rows = rows;
        this.cols = cols;
        this.ld = ld;
        this.data = data;
    }

    static PackedMatrix allocate(int bits, int rows, int cols) {
        SymmetricQuant.qmax(bits);
        int ld = bits == 4 ? cols + (cols & 1) : cols;
        long bytes = bits == 4 ? (long) rows * ld / 2 : (long) rows * ld;
        if (bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("packed matrix " + rows + "x" + cols + " is too large for one Java array");
        }
        return new PackedMatrix(bits, rows, cols, ld, new byte[(int) bytes]);
    }

    /** Wraps existing packed bytes (e.g. produced by a native quantizer); checks the length. */
    static PackedMatrix wrap(int bits, int rows, int cols, int ld, byte[] data) {
        SymmetricQuant.qmax(bits);
        if (ld < cols || (bits == 4 && (ld & 1) != 0)) {
            throw new ShapeMismatchException("bad leading dimension " + ld + " for " + cols + " columns of S" + bits);
        }
        long need = bits == 4 ? (long) rows * ld / 2 : (long) rows * ld;
        if (data.length != need) {
            throw new ShapeMismatchException("packed S" + bits + " " + rows + "x" + cols + " (ld " + ld
                    + ") needs " + need + " bytes, got " + data.length);
        }
        return new PackedMatrix(bits, rows, cols, ld, data);
    }

    void set(int r, int c, int q) {
        if (bits == 8) {
            data[r * ld + c] = (byte) q;
            return;
        }
        int index = (r * ld + c) >> 1;
        int old = data[index];
        data[index] = (c & 1) == 0
                ? (byte) ((old & 0xF0) | (q & 0x0F))
                : (byte) ((old & 0x0F) | ((q & 0x0F) << 4));
    }

    int get(int r, int c) {
        if (bits == 8) {
            return data[r * ld + c];
        }
        int b = data[(r * ld + c) >> 1];
        return (c & 1) == 0 ? (b << 28) >> 28 : b >> 4;
    }

    /** Row {@code r} as ints, for the reference GEMM. */
    void unpackRow(int r, int[] out) {
        for (int c = 0; c < cols; c++) {
            out[c] = get(r, c);
        }
    }
}
