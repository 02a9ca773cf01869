package lowbit.model;

import lowbit.io.HfCheckpoint;
import lowbit.io.MalformedModelException;

/**
 * Hyper-parameters of an OPT decoder, read from a Hugging Face {@code config.json} ({@code model_type
 * opt}): hidden_size, ffn_dim, num_hidden_layers, num_attention_heads, max_position_embeddings,
 * vocab_size, do_layer_norm_before (pre-norm; OPT-350m is the one post-norm size), enable_bias.
 * Variants outside this graph are rejected by name: {@code word_embed_proj_dim} other than
 * hidden_size (project_in/out), an activation other than ReLU, LayerNorms without affine
 * parameters. LayerNorm eps is PyTorch's default 1e-5, as in Hugging Face's OPT.
 *
 * @param preNorm LayerNorm before attention and MLP (and a final LayerNorm), else after the residual add
 */
public record OptConfig(int blockCount, int dim, int ffnDim, int headCount, int contextLength, int vocabSize, boolean preNorm,
                        boolean bias, float layerNormEps) {
    /** Hugging Face's OPT learned positions start at row 2 of embed_positions (rows 0 and 1 are a fairseq legacy). */
    public static final int POSITION_OFFSET = 2;

    public OptConfig {
        if (blockCount < 1 || dim < 1 || ffnDim < 1 || contextLength < 1 || vocabSize < 1) {
            throw new IllegalArgumentException("OPT sizes must be positive: " + blockCount + " blocks, dim " + dim + ", ffn " + ffnDim
                    + ", context " + contextLength + ", vocab " + vocabSize);
        }
        if (headCount < 1 || dim % headCount != 0) throw new IllegalArgumentException("dim " + dim + " not divisible by " + headCount + " heads");
    }

    public int headDim() {
        return dim / headCount;
    }

    public static OptConfig fromHf(HfCheckpoint hf) throws MalformedModelException {
        String type = hf.stringValue("model_type", null);
        if (!"opt".equals(type)) throw new MalformedModelException("config.json: model_type " + type + " is not opt", -1);
        int dim = hf.intValue("hidden_size");
        int heads = hf.intValue("num_attention_heads");
        if (heads <= 0 || dim % heads != 0) {
            throw new MalformedModelException("config.json: hidden_size " + dim + " is not divisible by num_attention_heads " + heads, -1);
        }
        int projection = hf.intValue("word_embed_proj_dim", dim);
        if (projection != dim) {
            throw new MalformedModelException("config.json: word_embed_proj_dim " + projection + " differs from hidden_size " + dim
                    + " (project_in/project_out, as in OPT-350m) is not supported", -1);
        }
        String activation = hf.stringValue("activation_function", "relu");
        if (!activation.equals("relu")) throw new MalformedModelException("config.json: activation_function " + activation + " is not relu", -1);
        if (!hf.booleanValue("layer_norm_elementwise_affine", true)) {
            throw new MalformedModelException("config.json: layer_norm_elementwise_affine false is not supported", -1);
        }
        if (hf.booleanValue("_remove_final_layer_norm", false)) {
            throw new MalformedModelException("config.json: _remove_final_layer_norm is not supported", -1);
        }
        return new OptConfig(hf.intValue("num_hidden_layers"), dim, hf.intValue("ffn_dim"), heads, hf.intValue("max_position_embeddings"),
                hf.intValue("vocab_size"), hf.booleanValue("do_layer_norm_before", true), hf.booleanValue("enable_bias", true), 1e-5f);
    }
}
