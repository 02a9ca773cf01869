package lowbit.model;

/**
 * Observes the input of every linear layer as the model runs (for calibration): called with the
 * layer's name (e.g. {@code "blk.3.ffn_down"}), the activations ({@code tokens × inFeatures}
 * row-major values at the start of {@code x}; the array may be longer and is reused afterwards, so
 * copy what you keep), before the layer computes.
 */
@FunctionalInterface
public interface LinearInputHook {
    void onInput(String layer, float[] x, int tokens, int inFeatures);
}
