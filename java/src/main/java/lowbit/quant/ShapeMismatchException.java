package lowbit.quant;

/** An array's length or a matrix dimension does not match what the operation was told. */
public final class ShapeMismatchException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public ShapeMismatchException(String message) {
        super(message);
    }
}
