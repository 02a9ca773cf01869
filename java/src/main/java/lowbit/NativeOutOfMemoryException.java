package lowbit;

/** A host or device allocation inside liblowbit failed; the message says which and how large. */
public class NativeOutOfMemoryException extends LowbitException {
    private static final long serialVersionUID = 1L;

    public NativeOutOfMemoryException(String message) {
        super(Status.OUT_OF_MEMORY, message);
    }
}
