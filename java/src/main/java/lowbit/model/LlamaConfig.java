package lowbit.model;

import lowbit.io.GgufFile;

/**
 * Hyper-parameters of a LLaMA-family decoder, read from GGUF metadata ({@code <arch>.block_count},
 * {@code embedding_length}, {@code feed_forward_length}, {@code attention.head_count(_kv)}, {@code
 * rope.freq_base}, {@code attention.layer_norm_rms_epsilon}, {@code context_length}, {@code
 * rope.dimension_count}, and linear RoPE scaling {@code rope.scaling.type/factor}).
 *
 * @param ropeDimensions leading dimensions of each head that RoPE rotates (the head size unless the
 *     file says otherwise)
 * @param ropeScale positions are divided by this (1 without linear scaling)
 */
public record LlamaConfig(
        int blockCount,
        int dim,
        int ffnDim,
        int headCount,
        int kvHeadCount,
        int headDim,
        int ropeDimensions,
        double ropeFreqBase,
        double ropeScale,
        float rmsEps,
        int contextLength,
        int vocabSize) {

    public LlamaConfig {
        if (dim % headCount != 0) throw new IllegalArgumentException("dim " + dim + " not divisible by " + headCount + " heads");
        if (headCount % kvHeadCount != 0) throw new IllegalArgumentException(headCount + " heads not divisible by " + kvHeadCount + " KV heads");
        if (ropeDimensions % 2 != 0 || ropeDimensions > headDim) throw new IllegalArgumentException("bad RoPE dimension count " + ropeDimensions);
    }

    /** Dimension of the K and V projections: KV heads × head size. */
    public int kvDim() {
        return kvHeadCount * headDim;
    }

    /** Reads the configuration of a {@code llama}-architecture GGUF file. */
    public static LlamaConfig fromGguf(GgufFile g) {
        String arch = g.getString("general.architecture");
        if (!arch.equals("llama")) throw new IllegalArgumentException("architecture " + arch + " is not llama");
        String p = arch + ".";
        int dim = g.getInt(p + "embedding_length");
        int heads = g.getInt(p + "attention.head_count");
        int kvHeads = has(g, p + "attention.head_count_kv") ? g.getInt(p + "attention.head_count_kv") : heads;
        int headDim = dim / heads;
        int ropeDims = has(g, p + "rope.dimension_count") ? g.getInt(p + "rope.dimension_count") : headDim;
        double base = has(g, p + "rope.freq_base") ? g.getDouble(p + "rope.freq_base") : 10000.0;
        double scale = 1.0;
        String scalingType = has(g, p + "rope.scaling.type") ? g.getString(p + "rope.scaling.type") : "none";
        if (scalingType.equals("linear")) {
            scale = g.getDouble(p + "rope.scaling.factor");
        } else if (!scalingType.equals("none")) {
            throw new IllegalArgumentException("RoPE scaling " + scalingType + " is not supported (none, linear; llama3-style rope_freqs tensors are)");
        }
        if (scalingType.equals("none") && has(g, p + "rope.scale_linear")) scale = g.getDouble(p + "rope.scale_linear"); // older key
        int vocab = has(g, p + "vocab_size") ? g.getInt(p + "vocab_size") : g.getStringArray("tokenizer.ggml.tokens").length;
        return new LlamaConfig(
                g.getInt(p + "block_count"), dim, g.getInt(p + "feed_forward_length"), heads, kvHeads, headDim, ropeDims,
                base, scale, (float) g.getDouble(p + "attention.layer_norm_rms_epsilon"), g.getInt(p + "context_length"), vocab);
    }

    private static boolean has(GgufFile g, String key) {
        return g.metadata().containsKey(key);
    }
}
