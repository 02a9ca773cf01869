package lowbit.model;

import com.fasterxml.jackson.databind.JsonNode;
import lowbit.io.GgufFile;
import lowbit.io.HfCheckpoint;
import lowbit.io.MalformedModelException;

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

    /** Model types whose Hugging Face config.json {@link #fromHf} reads (all LLaMA-shaped decoders). */
    static final java.util.Set<String> HF_MODEL_TYPES = java.util.Set.of("llama", "mistral");

    /**
     * Reads a Hugging Face {@code config.json} of a LLaMA-family model ({@code model_type} llama or
     * mistral): hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
     * num_key_value_heads, rope_theta, rms_norm_eps, max_position_embeddings, vocab_size and
     * rope_scaling (none, {@code linear}, or {@code llama3}, whose per-frequency factors {@link
     * LlamaModel#load(HfCheckpoint)} computes). A Mistral {@code sliding_window} caps the context
     * length (positions beyond it would need the window), so the graph stays exact.
     */
    public static LlamaConfig fromHf(HfCheckpoint hf) throws MalformedModelException {
        String type = hf.stringValue("model_type", null);
        if (type == null || !HF_MODEL_TYPES.contains(type)) {
            throw new MalformedModelException(hf.directory().resolve("config.json") + ": model_type " + type
                    + " is not a LLaMA-family type " + HF_MODEL_TYPES, -1);
        }
        int dim = hf.intValue("hidden_size");
        int heads = hf.intValue("num_attention_heads");
        if (heads <= 0 || dim % heads != 0) throw new MalformedModelException("config.json: hidden_size " + dim + " is not divisible by num_attention_heads " + heads, -1);
        int headDim = hf.intValue("head_dim", dim / heads);
        if (headDim != dim / heads) {
            throw new MalformedModelException("config.json: head_dim " + headDim + " differs from hidden_size / num_attention_heads = "
                    + dim / heads + "; not supported", -1);
        }
        int kvHeads = hf.intValue("num_key_value_heads", heads);
        double scale = 1.0;
        JsonNode scaling = ropeScaling(hf);
        if (scaling != null) {
            String kind = ropeScalingType(scaling);
            if (kind.equals("linear")) {
                scale = scaling.path("factor").asDouble(Double.NaN);
                if (!(scale > 0)) throw new MalformedModelException("config.json: linear rope_scaling needs a positive factor, has " + scaling, -1);
            } else if (!kind.equals("llama3") && !kind.equals("default")) {
                throw new MalformedModelException("config.json: rope_scaling type " + kind + " is not supported (linear, llama3)", -1);
            }
        }
        if (hf.doubleValue("partial_rotary_factor", 1.0) != 1.0) {
            throw new MalformedModelException("config.json: partial_rotary_factor other than 1 is not supported", -1);
        }
        int context = hf.intValue("max_position_embeddings");
        int window = hf.intValue("sliding_window", context);
        return new LlamaConfig(hf.intValue("num_hidden_layers"), dim, hf.intValue("intermediate_size"), heads, kvHeads, headDim,
                headDim, ropeTheta(hf), scale, (float) hf.doubleValue("rms_norm_eps"),
                Math.min(context, window), hf.intValue("vocab_size"));
    }

    /**
     * The RoPE scaling object: {@code rope_scaling} (transformers 4), else {@code rope_parameters}
     * (transformers 5 writes the type, factors and theta there and no top-level keys); null if neither.
     */
    static JsonNode ropeScaling(HfCheckpoint hf) {
        for (String key : new String[] {"rope_scaling", "rope_parameters"}) {
            JsonNode n = hf.config().get(key);
            if (n != null && !n.isNull()) {
                return n;
            }
        }
        return null;
    }

    /** {@code rope_theta}, top level (transformers 4) or inside {@code rope_parameters} (5); 10000 if absent. */
    static double ropeTheta(HfCheckpoint hf) throws MalformedModelException {
        JsonNode params = hf.config().get("rope_parameters");
        if (!hf.config().has("rope_theta") && params != null && params.has("rope_theta")) {
            double theta = params.get("rope_theta").asDouble(Double.NaN);
            if (!(theta > 0)) throw new MalformedModelException("config.json: rope_parameters.rope_theta must be > 0, has " + params, -1);
            return theta;
        }
        return hf.doubleValue("rope_theta", 10000.0);
    }

    /** {@code rope_scaling.rope_type} (newer configs) or {@code .type}. */
    static String ropeScalingType(JsonNode scaling) throws MalformedModelException {
        JsonNode t = scaling.has("rope_type") ? scaling.get("rope_type") : scaling.get("type");
        if (t == null || !t.isTextual()) throw new MalformedModelException("config.json: rope_scaling " + scaling + " names no type", -1);
        return t.asText();
    }

    private static boolean has(GgufFile g, String key) {
        return g.metadata().containsKey(key);
    }
}
