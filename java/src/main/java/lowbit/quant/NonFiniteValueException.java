package lowbit.quant;

/**
 * A NaN or infinite value reached calibration or quantization. Like the native library
 * ({@code LOWBIT_ERR_NONFINITE}), lowbit never saturates such values silently; the message names
 * where the value was found.
 */
public final class NonFiniteValueException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public NonFiniteValueException(String message) {
        super(message);
    }
}
