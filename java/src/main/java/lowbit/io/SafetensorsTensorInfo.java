package lowbit.io;

/**
 * One tensor of a safetensors file: name, element type, shape (PyTorch order, last dimension
 * contiguous) and its byte range {@code [begin, end)} relative to the start of the data section.
 */
public record SafetensorsTensorInfo(String name, SafetensorsDType dtype, long[] shape, long begin, long end) {
    public SafetensorsTensorInfo {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long elementCount() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    public long byteSize() {
        return end - begin;
    }
}
