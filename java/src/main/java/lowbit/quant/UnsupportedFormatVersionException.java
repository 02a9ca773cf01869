package lowbit.quant;

/**
 * A saved file (calibration statistics or a flatten plan) has a format name or version this build
 * cannot read. The message names the file, the version found and the version supported.
 */
public final class UnsupportedFormatVersionException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public UnsupportedFormatVersionException(String message) {
        super(message);
    }
}
