package lowbit.io;

import java.util.Arrays;

/**
 * One tensor of a GGUF file: its name, element type, dimensions in GGML order ({@code dims[0]} is
 * the innermost, contiguous one — a PyTorch {@code [out, in]} weight has {@code dims = {in, out}}),
 * and where its bytes lie ({@code offset} is relative to the start of the file's data section).
 */
public record GgufTensorInfo(String name, GgmlType type, long[] dims, long offset, long byteSize) {
    public GgufTensorInfo {
        dims = dims.clone();
    }

    @Override
    public long[] dims() {
        return dims.clone();
    }

    /** The product of the dimensions. */
    public long elementCount() {
        long n = 1;
        for (long d : dims) n *= d;
        return n;
    }

    /** Rows in row-major view: the product of all dimensions but the innermost. */
    public long rows() {
        return elementCount() / dims[0];
    }

    /** Length of one row: the innermost dimension. */
    public long columns() {
        return dims[0];
    }

    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(dims) + " @" + offset + " (" + byteSize + " bytes)";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo t && t.name.equals(name) && t.type == type
                && Arrays.equals(t.dims, dims) && t.offset == offset && t.byteSize == byteSize;
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Long.hashCode(offset);
    }
}
