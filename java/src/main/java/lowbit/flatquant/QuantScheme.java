package lowbit.flatquant;

import lowbit.Granularity;
import lowbit.calibrate.QuantSpec;

/**
 * The quantizers of a FlatQuant setting: {@code weights} (per output channel), {@code activations}
 * (the inputs of the seven linear layers, per token, dynamic) and {@code kv} (keys after RoPE and
 * the K transform, values after the V transform; null for a full-precision KV cache).
 */
public record QuantScheme(String name, QuantSpec weights, QuantSpec activations, QuantSpec kv) {
    public QuantScheme {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("a quantization scheme needs a name");
        if (weights == null || activations == null) throw new IllegalArgumentException(name + ": weight and activation quantizers are required");
    }

    /**
     * The authors' W4A4KV4: INT4 per-channel symmetric weights, INT4 per-token symmetric dynamic
     * activations, K and V INT4 asymmetric in groups of {@code kvGroup} (the authors use 128 = the
     * head size of LLaMA; with head size 64, as SmolLM2, one group per head: pass 64).
     */
    public static QuantScheme w4a4kv4(int kvGroup) {
        return new QuantScheme("W4A4KV4", sym(4), sym(4), QuantSpec.grouped(4, false, kvGroup));
    }

    /** W4A4 with a full-precision KV cache. */
    public static QuantScheme w4a4() {
        return new QuantScheme("W4A4", sym(4), sym(4), null);
    }

    /** INT4 per-channel symmetric weights, INT8 per-token symmetric activations, KV16. */
    public static QuantScheme w4a8() {
        return new QuantScheme("W4A8", sym(4), sym(8), null);
    }

    /** INT8 per-channel symmetric weights, INT8 per-token symmetric activations, KV16. */
    public static QuantScheme w8a8() {
        return new QuantScheme("W8A8", sym(8), sym(8), null);
    }

    /**
     * INT6 per-channel symmetric weights (grid −32..31), INT6 per-token symmetric activations, KV16.
     * The native integer GEMM of {@link FlatQuantLinear} takes 4 or 8 bits only; a W6A6 model runs
     * on the bit-plane GEMM ({@code lowbit.abq.TransformedAbqLinear}, method {@code abq-w6a6-flat}).
     */
    public static QuantScheme w6a6() {
        return new QuantScheme("W6A6", sym(6), sym(6), null);
    }

    /**
     * This scheme with INT8 weights and activations (same granularity, symmetric) and the same KV
     * quantizer: what a block kept at 8 bits runs ({@code --flatquant-8bit-blocks}); the KV cache
     * is one codec for all blocks, so it keeps its width.
     */
    public QuantScheme widened() {
        return new QuantScheme(name + " (block at W8A8)", sym(8), sym(8), kv);
    }

    private static QuantSpec sym(int bits) {
        return QuantSpec.symmetric(bits, Granularity.PER_ROW);
    }
}
