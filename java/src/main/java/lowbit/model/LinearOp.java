package lowbit.model;

/**
 * A linear layer {@code y = x · Wᵀ (+ b)} as the model graph sees it: the graph calls {@link
 * #forward} and never looks inside, so quantization swaps an FP layer for a quantized one without
 * touching the graph.
 *
 * <p>Activations are row-major {@code float} arrays: {@code x} holds {@code tokens × inFeatures()}
 * values, {@code y} receives {@code tokens × outFeatures()} values (every element is written).
 * Implementations say whether {@link #forward} may run concurrently. The graph never calls one
 * layer concurrently with itself, but for a few tokens (decode) it runs layers that read the same
 * input (q/k/v, gate/up) at the same time, so layers must not share unsynchronized mutable state.
 */
public interface LinearOp extends AutoCloseable {
    int inFeatures();

    int outFeatures();

    void forward(float[] x, int tokens, float[] y);

    /** Frees what the layer holds outside the Java heap (native weights); a no-op by default. */
    @Override
    default void close() {}
}
