package lowbit;

/**
 * A floating-point input held NaN or ±Inf where lowbit needs finite values (quantization). Every
 * backend treats non-finite inputs as this error, never as a saturated value; the message names the
 * operation and the first position seen.
 */
public class NonFiniteInputException extends LowbitException {
    private static final long serialVersionUID = 1L;

    public NonFiniteInputException(String message) {
        super(Status.NONFINITE, message);
    }
}
