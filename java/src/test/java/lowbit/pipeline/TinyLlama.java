package lowbit.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import lowbit.io.HfCheckpoint;
import lowbit.io.SafetensorsDType;
import lowbit.io.SafetensorsWriter;
import lowbit.model.LlamaConfig;
import lowbit.model.LlamaModel;

/**
 * A tiny random LLaMA as a Hugging Face checkpoint directory (no download), shaped so that FlatQuant
 * applies: hidden 48 (Kronecker 6 x 8), intermediate 80 (8 x 10), 4 heads of 12 over 2 KV heads, 2
 * blocks. Weights are Gaussian with std 1/sqrt(fan-in) (norm weights in [0.6, 1.4]), so activations
 * stay of order 1 through the blocks.
 */
final class TinyLlama {
    static final LlamaConfig CONFIG = new LlamaConfig(2, 48, 80, 4, 2, 12, 12, 10000.0, 1.0, 1e-5f, 64, 50);
    private static final ObjectMapper JSON = new ObjectMapper();

    private TinyLlama() {}

    /** Writes the checkpoint of {@code seed} into {@code dir} (created) and returns it. */
    static Path write(Path dir, long seed) throws IOException {
        LlamaConfig c = CONFIG;
        Random r = new Random(seed);
        SafetensorsWriter w = new SafetensorsWriter();
        w.add("model.embed_tokens.weight", gaussian(r, c.vocabSize() * c.dim(), 1), c.vocabSize(), c.dim());
        for (int l = 0; l < c.blockCount(); l++) {
            String p = "model.layers." + l + ".";
            double sd = 1 / Math.sqrt(c.dim()), sf = 1 / Math.sqrt(c.ffnDim());
            w.add(p + "input_layernorm.weight", positive(r, c.dim()), c.dim());
            w.add(p + "post_attention_layernorm.weight", positive(r, c.dim()), c.dim());
            w.add(p + "self_attn.q_proj.weight", gaussian(r, c.dim() * c.dim(), sd), c.dim(), c.dim());
            w.add(p + "self_attn.k_proj.weight", gaussian(r, c.kvDim() * c.dim(), sd), c.kvDim(), c.dim());
            w.add(p + "self_attn.v_proj.weight", gaussian(r, c.kvDim() * c.dim(), sd), c.kvDim(), c.dim());
            w.add(p + "self_attn.o_proj.weight", gaussian(r, c.dim() * c.dim(), sd), c.dim(), c.dim());
            w.add(p + "mlp.gate_proj.weight", gaussian(r, c.ffnDim() * c.dim(), sd), c.ffnDim(), c.dim());
            w.add(p + "mlp.up_proj.weight", gaussian(r, c.ffnDim() * c.dim(), sd), c.ffnDim(), c.dim());
            w.add(p + "mlp.down_proj.weight", gaussian(r, c.dim() * c.ffnDim(), sf), c.dim(), c.ffnDim());
        }
        w.add("model.norm.weight", positive(r, c.dim()), c.dim());
        w.add("lm_head.weight", gaussian(r, c.vocabSize() * c.dim(), 1 / Math.sqrt(c.dim())), c.vocabSize(), c.dim());
        Files.createDirectories(dir);
        w.write(dir.resolve("model.safetensors"), SafetensorsDType.F32);
        ObjectNode n = JSON.createObjectNode();
        n.put("model_type", "llama");
        n.putArray("architectures").add("LlamaForCausalLM");
        n.put("hidden_size", c.dim());
        n.put("intermediate_size", c.ffnDim());
        n.put("num_hidden_layers", c.blockCount());
        n.put("num_attention_heads", c.headCount());
        n.put("num_key_value_heads", c.kvHeadCount());
        n.put("rope_theta", c.ropeFreqBase());
        n.put("rms_norm_eps", c.rmsEps());
        n.put("max_position_embeddings", c.contextLength());
        n.put("vocab_size", c.vocabSize());
        n.putNull("rope_scaling");
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(n));
        return dir;
    }

    /** A fresh FP32 load of the checkpoint in {@code dir}. */
    static LlamaModel load(Path dir) throws IOException {
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            return LlamaModel.load(hf);
        }
    }

    static int[] tokens(int n, long seed) {
        Random r = new Random(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = r.nextInt(CONFIG.vocabSize());
        return t;
    }

    private static float[] gaussian(Random r, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * std);
        return v;
    }

    private static float[] positive(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (0.6 + 0.8 * r.nextDouble());
        return v;
    }
}
