package lowbit.model;

import java.util.List;

/**
 * A decoder-only language model as calibration, quantization, evaluation and generation see it:
 * named, replaceable {@link LinearOp}s observed by {@link LinearInputHook}s, named normalization
 * weights, and forward passes over a {@link KvCache}. {@link LlamaModel} and {@link OptModel}
 * implement it with the same layer names: {@code blk.N.attn_q/attn_k/attn_v/attn_output},
 * {@code blk.N.ffn_gate/ffn_up/ffn_down} (OPT has no gate: fc1 is {@code ffn_up}, fc2 {@code
 * ffn_down}), {@code output}; norms {@code blk.N.attn_norm}, {@code blk.N.ffn_norm}, {@code
 * output_norm}. Instances are not thread-safe: run one forward pass at a time.
 */
public interface DecoderModel {
    /** {@code "llama"} or {@code "opt"}. */
    String architecture();

    /** Hidden size, blocks, vocabulary, context length, heads and FFN width, for checks and reports. */
    Shape shape();

    /** The architecture-independent sizes of a decoder. */
    record Shape(int blockCount, int dim, int ffnDim, int headCount, int kvHeadCount, int vocabSize, int contextLength) {}

    /** Names of all linear layers, block by block in the order they run, then {@code "output"}. */
    List<String> linearNames();

    LinearOp linear(String name);

    /** Replaces the linear layer {@code name}; the replacement must have the same shape. */
    void replaceLinear(String name, LinearOp op);

    /** A copy of a normalization's weight (gain), by name. */
    float[] normWeight(String name);

    /** Replaces a normalization's weight (same length, finite values). */
    void setNormWeight(String name, float[] weight);

    /** A copy of a normalization's bias (LayerNorm), or null when it has none (RMSNorm). */
    float[] normBias(String name);

    /** Replaces a LayerNorm's bias; an exception when the normalization has no bias. */
    void setNormBias(String name, float[] bias);

    /**
     * True when every block linear reads either a normalization's output (q/k/v, gate/up) or its own
     * producer inside the block (attn_output, ffn_down), so a smoothing vector can be folded into
     * the normalization (pre-norm blocks).
     */
    boolean normsFeedLinears();

    void addInputHook(LinearInputHook hook);

    void removeInputHook(LinearInputHook hook);

    /** A KV cache for one sequence of up to {@code capacity} tokens (at most the context length). */
    KvCache newKvCache(int capacity);

    /**
     * A KV cache of {@code capacity} that applies {@code codec} (null: none) from its first position,
     * with the storage the codec needs (packed codes for a codec with {@link KvCache.Codec#packing}).
     * The default makes a plain cache and sets the codec (allocating twice for a packing codec); the
     * models allocate the right storage directly.
     */
    default KvCache newKvCache(int capacity, KvCache.Codec codec) {
        KvCache c = newKvCache(capacity);
        c.setCodec(codec);
        return c;
    }

    /** Runs {@code tokens} after the positions in {@code cache}; the logits of the last token. */
    float[] forward(KvCache cache, int[] tokens);

    /** Runs {@code tokens}; the final normalized hidden states of every token ({@code tokens × dim}). */
    float[] forwardHidden(KvCache cache, int[] tokens);

    /** Logits ({@code rows × vocabSize}) of {@code rows} final hidden states. */
    float[] logits(float[] hidden, int rows);
}
