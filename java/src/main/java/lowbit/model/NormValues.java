package lowbit.model;

/** Checked in-place replacement of a normalization's weight or bias, shared by the decoder graphs. */
final class NormValues {
    private NormValues() {}

    /** Copies {@code values} into {@code target}: same length, every value finite. */
    static void set(float[] target, float[] values, String name) {
        if (values.length != target.length) {
            throw new IllegalArgumentException(name + " has " + target.length + " values, got " + values.length);
        }
        for (float v : values) {
            if (!Float.isFinite(v)) throw new IllegalArgumentException(name + ": value " + v + " is not finite");
        }
        System.arraycopy(values, 0, target, 0, target.length);
    }
}
