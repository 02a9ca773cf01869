package lowbit;

/**
 * A failure reported by liblowbit. The message names the native operation and the problem, e.g.
 * {@code "lowbit_quantize: input x has a non-finite value (NaN) at row 3, column 17"}.
 *
 * <p>Arguments that Java can check before calling native code (null or closed tensors, shapes,
 * dtypes) fail earlier with the standard {@link IllegalArgumentException}, {@link
 * IllegalStateException} or {@link NullPointerException}.
 */
public class LowbitException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The status codes of {@code lowbit.h}. */
    public enum Status {
        OK(0),
        INVALID_ARGUMENT(1),
        OUT_OF_MEMORY(2),
        NO_DEVICE(3),
        UNSUPPORTED(4),
        NONFINITE(5),
        DEVICE(6),
        INTERNAL(7),
        UNKNOWN(-1);

        final int code;

        Status(int code) {
            this.code = code;
        }

        static Status of(int code) {
            for (Status s : values()) {
                if (s.code == code) {
                    return s;
                }
            }
            return UNKNOWN;
        }
    }

    private final Status status;

    public LowbitException(Status status, String message) {
        super(message);
        this.status = status;
    }

    public LowbitException(Status status, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
    }

    public Status status() {
        return status;
    }

    /** The exception for a native status code, choosing the most specific subclass. */
    static LowbitException of(int code, String message) {
        Status status = Status.of(code);
        switch (status) {
            case NO_DEVICE:
                return new NoDeviceException(message);
            case NONFINITE:
                return new NonFiniteInputException(message);
            case OUT_OF_MEMORY:
                return new NativeOutOfMemoryException(message);
            default:
                return new LowbitException(status, message);
        }
    }
}
