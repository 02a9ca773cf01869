package lowbit.io;

import java.io.IOException;

/**
 * A model file (GGUF or safetensors) whose bytes contradict its own header: truncated, counts or
 * lengths beyond the end of the file, tensor data out of range or overlapping, unknown types, or
 * shapes that do not match byte counts. The message names the problem and, where one exists, the
 * byte offset at which it was found.
 */
public class MalformedModelException extends IOException {
    private final long offset;

    /** A problem found at byte {@code offset} of the file (-1 when no single offset applies). */
    public MalformedModelException(String message, long offset) {
        super(offset >= 0 ? message + " (at byte offset " + offset + ")" : message);
        this.offset = offset;
    }

    /** The byte offset the problem was found at, or -1. */
    public long offset() {
        return offset;
    }
}
