package lowbit.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import lowbit.io.HfCheckpoint;
import lowbit.io.MalformedModelException;

/**
 * A Hugging Face LLaMA-family checkpoint seen as GGUF-named weights: {@code blk.N.attn_q.weight}
 * reads {@code model.layers.N.self_attn.q_proj.weight} and so on, with PyTorch's {@code [out][in]}
 * shape checked against the GGML dims. Hugging Face rotates query/key halves ({@code rotate_half}:
 * dimension i pairs with i + d/2), llama.cpp adjacent pairs (2i, 2i+1); q_proj and k_proj rows (and
 * biases) are permuted on load exactly as llama.cpp's converter does — row {@code h·d + 2i + j} of
 * the result is row {@code h·d + j·d/2 + i} of the checkpoint — so one graph serves both formats.
 * {@code rope_freqs.weight} is computed from a {@code llama3} {@code rope_scaling}, as the converter
 * does. Tied embeddings: no {@code output.weight} when {@code tie_word_embeddings} is true or no
 * {@code lm_head.weight} exists.
 */
final class HfLlamaWeights implements WeightSource {
    private static final Pattern BLOCK = Pattern.compile("blk\\.(\\d+)\\.(\\w+)\\.(weight|bias)");

    private final HfCheckpoint hf;
    private final LlamaConfig config;
    private final boolean tied;
    private final float[] ropeFreqs;

    HfLlamaWeights(HfCheckpoint hf, LlamaConfig config) throws IOException {
        this.hf = hf;
        this.config = config;
        boolean tie = hf.booleanValue("tie_word_embeddings", false);
        if (!tie && !hf.hasTensor("lm_head.weight")) {
            throw new MalformedModelException("checkpoint " + hf.directory() + " has no lm_head.weight and tie_word_embeddings is not true", -1);
        }
        this.tied = tie;
        this.ropeFreqs = llama3Factors(hf, config);
    }

    /** The Hugging Face name of a GGUF-named tensor. */
    static String hfName(String gguf) {
        switch (gguf) {
            case "token_embd.weight": return "model.embed_tokens.weight";
            case "output_norm.weight": return "model.norm.weight";
            case "output.weight": return "lm_head.weight";
            case "output.bias": return "lm_head.bias";
            default: break;
        }
        Matcher m = BLOCK.matcher(gguf);
        if (!m.matches()) throw new IllegalArgumentException("no Hugging Face name for " + gguf);
        String p = "model.layers." + m.group(1) + ".";
        String suffix = "." + m.group(3);
        switch (m.group(2)) {
            case "attn_norm": return p + "input_layernorm" + suffix;
            case "ffn_norm": return p + "post_attention_layernorm" + suffix;
            case "attn_q": return p + "self_attn.q_proj" + suffix;
            case "attn_k": return p + "self_attn.k_proj" + suffix;
            case "attn_v": return p + "self_attn.v_proj" + suffix;
            case "attn_output": return p + "self_attn.o_proj" + suffix;
            case "ffn_gate": return p + "mlp.gate_proj" + suffix;
            case "ffn_up": return p + "mlp.up_proj" + suffix;
            case "ffn_down": return p + "mlp.down_proj" + suffix;
            default: throw new IllegalArgumentException("no Hugging Face name for " + gguf);
        }
    }

    @Override
    public boolean has(String name) {
        if (name.equals("rope_freqs.weight")) return ropeFreqs != null;
        if (name.equals("output.weight")) return !tied;
        return hf.hasTensor(hfName(name));
    }

    @Override
    public float[] read(String name, long... dims) throws IOException {
        if (name.equals("rope_freqs.weight")) return ropeFreqs.clone();
        long[] shape = new long[dims.length];
        for (int i = 0; i < dims.length; i++) shape[i] = dims[dims.length - 1 - i];
        float[] values = hf.readFloats(hfName(name), shape);
        Matcher m = BLOCK.matcher(name);
        if (m.matches() && (m.group(2).equals("attn_q") || m.group(2).equals("attn_k"))) {
            int heads = m.group(2).equals("attn_q") ? config.headCount() : config.kvHeadCount();
            int rowLength = dims.length == 2 ? (int) dims[0] : 1;
            return toAdjacentPairs(values, heads, config.headDim(), rowLength);
        }
        return values;
    }

    /** llama.cpp's converter permutation: rotate-half row order to adjacent-pair order, per head. */
    static float[] toAdjacentPairs(float[] w, int heads, int headDim, int rowLength) {
        float[] out = new float[w.length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < half; i++) {
                for (int j = 0; j < 2; j++) {
                    int to = h * headDim + 2 * i + j;
                    int from = h * headDim + j * half + i;
                    System.arraycopy(w, from * rowLength, out, to * rowLength, rowLength);
                }
            }
        }
        return out;
    }

    /** The inverse of {@link #toAdjacentPairs}: adjacent-pair (GGUF) row order back to rotate-half. */
    static float[] toRotateHalf(float[] w, int heads, int headDim, int rowLength) {
        float[] out = new float[w.length];
        int half = headDim / 2;
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < half; i++) {
                for (int j = 0; j < 2; j++) {
                    System.arraycopy(w, (h * headDim + 2 * i + j) * rowLength, out, (h * headDim + j * half + i) * rowLength, rowLength);
                }
            }
        }
        return out;
    }

    /** Per-frequency divisors of a {@code llama3} rope_scaling (as llama.cpp's converter computes them), or null. */
    private static float[] llama3Factors(HfCheckpoint hf, LlamaConfig c) throws MalformedModelException {
        JsonNode s = LlamaConfig.ropeScaling(hf);
        if (s == null || !LlamaConfig.ropeScalingType(s).equals("llama3")) return null;
        double factor = s.path("factor").asDouble(8.0);
        double low = s.path("low_freq_factor").asDouble(1.0);
        double high = s.path("high_freq_factor").asDouble(4.0);
        double oldContext = s.path("original_max_position_embeddings").asDouble(8192);
        if (!(factor > 0) || !(high > low) || !(oldContext > 0)) {
            throw new MalformedModelException("config.json: llama3 rope_scaling " + s + " needs factor > 0, high_freq_factor > low_freq_factor", -1);
        }
        double lowWavelength = oldContext / low;
        double highWavelength = oldContext / high;
        float[] f = new float[c.ropeDimensions() / 2];
        for (int i = 0; i < f.length; i++) {
            double frequency = 1.0 / Math.pow(c.ropeFreqBase(), 2.0 * i / c.ropeDimensions());
            double wavelength = 2 * Math.PI / frequency;
            if (wavelength < highWavelength) {
                f[i] = 1f;
            } else if (wavelength > lowWavelength) {
                f[i] = (float) factor;
            } else {
                double smooth = (oldContext / wavelength - low) / (high - low);
                f[i] = (float) (1 / ((1 - smooth) / factor + smooth));
            }
        }
        return f;
    }
}
