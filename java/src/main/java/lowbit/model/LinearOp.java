package lowbit.model;

/**
 * A linear layer {@code y = x · Wᵀ (+ b)} as the model graph sees it: the graph calls {@link
 * #forward} and never looks inside, so quantization swaps an FP layer for a quantized one without
 * touching the graph.
 *
 * <p>Activations are row-major {@code float} arrays: {@code x} holds {@code tokens × inFeatures()}
 * values, {@code y} receives {@code tokens × outFeatures()} values (every element is written).
 */
public interface LinearOp {
    int inFeatures();

    int outFeatures();

    void forward(float[] x, int tokens, float[] y);
}
