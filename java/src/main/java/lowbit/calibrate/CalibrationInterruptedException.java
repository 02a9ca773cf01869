package lowbit.calibrate;

/** Thrown when the calibrating thread is interrupted; the run's committed blocks stay in its directory. */
public final class CalibrationInterruptedException extends RuntimeException {
    public CalibrationInterruptedException(String message) {
        super(message);
    }
}
