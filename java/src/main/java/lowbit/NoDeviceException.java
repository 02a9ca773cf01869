package lowbit;

/** CUDA was asked for, but this build has no CUDA backend, or the host has no driver or device. */
public class NoDeviceException extends LowbitException {
    private static final long serialVersionUID = 1L;

    public NoDeviceException(String message) {
        super(Status.NO_DEVICE, message);
    }
}
