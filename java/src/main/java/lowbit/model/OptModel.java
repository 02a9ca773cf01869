package lowbit.model;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.io.HfCheckpoint;
import lowbit.io.MalformedModelException;

/**
 * An OPT decoder (Hugging Face's {@code OPTForCausalLM}), read top to bottom (pre-norm, the usual
 * case):
 *
 * <pre>
 *   x = embed_tokens[tokens] + embed_positions[position + 2]
 *   for each block:  x += attn_output(attention(attn_q(n) · d^-½, attn_k(n), attn_v(n)))   with n = layernorm(x)
 *                    x += ffn_down(relu(ffn_up(n)))                                        with n = layernorm(x)
 *   logits = output(layernorm(x))                                                           (output tied to embed_tokens)
 * </pre>
 *
 * With {@code do_layer_norm_before = false} each LayerNorm is applied after its residual add
 * instead, and there is no final LayerNorm. Linear layers carry biases; their names are those of
 * {@link DecoderModel} (fc1 is {@code ffn_up}, fc2 {@code ffn_down}); the LayerNorms are {@code
 * blk.N.attn_norm} (self_attn_layer_norm), {@code blk.N.ffn_norm} (the block's final_layer_norm) and
 * {@code output_norm} (the decoder's final_layer_norm). Tensor names may carry the prefix {@code
 * model.decoder.} or {@code decoder.}.
 */
public final class OptModel implements DecoderModel {
    private static final String[] BLOCK_LINEARS = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down"};
    private static final int Q = 0, K = 1, V = 2, O = 3, UP = 4, DOWN = 5;

    private final OptConfig config;
    private final float[] embedding; // [vocab][dim]
    private final float[] positions; // [context + 2][dim]
    private final Map<String, float[]> normWeights = new LinkedHashMap<>();
    private final Map<String, float[]> normBiases = new LinkedHashMap<>();
    private final String[][] names;
    private final LinearLayers linears = new LinearLayers();

    private OptModel(OptConfig config, float[] embedding, float[] positions) {
        this.config = config;
        this.embedding = embedding;
        this.positions = positions;
        this.names = new String[config.blockCount()][BLOCK_LINEARS.length];
        for (int l = 0; l < config.blockCount(); l++) {
            for (int i = 0; i < BLOCK_LINEARS.length; i++) names[l][i] = "blk." + l + "." + BLOCK_LINEARS[i];
        }
    }

    /** Loads an OPT checkpoint ({@code config.json} + safetensors, F32/F16/BF16). */
    public static OptModel load(HfCheckpoint hf) throws IOException {
        OptConfig c = OptConfig.fromHf(hf);
        String p = hf.hasTensor("model.decoder.embed_tokens.weight") ? "model.decoder." : "decoder.";
        int d = c.dim();
        float[] embedding = hf.readFloats(p + "embed_tokens.weight", c.vocabSize(), d);
        OptModel m = new OptModel(c, embedding, hf.readFloats(p + "embed_positions.weight", c.contextLength() + OptConfig.POSITION_OFFSET, d));
        for (int l = 0; l < c.blockCount(); l++) {
            String b = p + "layers." + l + ".";
            String g = "blk." + l + ".";
            m.norm(hf, g + "attn_norm", b + "self_attn_layer_norm");
            m.linears.add(g + "attn_q", linear(hf, c, b + "self_attn.q_proj", d, d));
            m.linears.add(g + "attn_k", linear(hf, c, b + "self_attn.k_proj", d, d));
            m.linears.add(g + "attn_v", linear(hf, c, b + "self_attn.v_proj", d, d));
            m.linears.add(g + "attn_output", linear(hf, c, b + "self_attn.out_proj", d, d));
            m.norm(hf, g + "ffn_norm", b + "final_layer_norm");
            m.linears.add(g + "ffn_up", linear(hf, c, b + "fc1", c.ffnDim(), d));
            m.linears.add(g + "ffn_down", linear(hf, c, b + "fc2", d, c.ffnDim()));
        }
        if (c.preNorm()) m.norm(hf, "output_norm", p + "final_layer_norm");
        boolean tied = hf.booleanValue("tie_word_embeddings", true);
        if (!tied && !hf.hasTensor("lm_head.weight")) {
            throw new MalformedModelException("checkpoint " + hf.directory() + " has no lm_head.weight and tie_word_embeddings is false", -1);
        }
        m.linears.add("output", tied ? new FloatLinear(embedding, null, c.vocabSize(), d)
                : new FloatLinear(hf.readFloats("lm_head.weight", c.vocabSize(), d), null, c.vocabSize(), d));
        return m;
    }

    private void norm(HfCheckpoint hf, String name, String hfName) throws IOException {
        normWeights.put(name, hf.readFloats(hfName + ".weight", config.dim()));
        normBiases.put(name, hf.readFloats(hfName + ".bias", config.dim()));
    }

    private static LinearOp linear(HfCheckpoint hf, OptConfig c, String name, int out, int in) throws IOException {
        float[] w = hf.readFloats(name + ".weight", out, in);
        float[] bias = c.bias() ? hf.readFloats(name + ".bias", out) : null;
        return new FloatLinear(w, bias, out, in);
    }

    public OptConfig config() {
        return config;
    }

    @Override
    public String architecture() {
        return "opt";
    }

    @Override
    public Shape shape() {
        OptConfig c = config;
        return new Shape(c.blockCount(), c.dim(), c.ffnDim(), c.headCount(), c.headCount(), c.vocabSize(), c.contextLength());
    }

    @Override
    public List<String> linearNames() {
        return linears.names();
    }

    @Override
    public LinearOp linear(String name) {
        return linears.get(name);
    }

    @Override
    public void replaceLinear(String name, LinearOp op) {
        linears.replace(name, op);
    }

    @Override
    public float[] normWeight(String name) {
        return array(normWeights, name).clone();
    }

    @Override
    public void setNormWeight(String name, float[] weight) {
        NormValues.set(array(normWeights, name), weight, name);
    }

    @Override
    public float[] normBias(String name) {
        return array(normBiases, name).clone();
    }

    @Override
    public void setNormBias(String name, float[] bias) {
        NormValues.set(array(normBiases, name), bias, name);
    }

    @Override
    public boolean normsFeedLinears() {
        return config.preNorm();
    }

    private static float[] array(Map<String, float[]> map, String name) {
        float[] a = map.get(name);
        if (a == null) throw new IllegalArgumentException("no LayerNorm " + name + "; names look like blk.0.attn_norm, blk.0.ffn_norm or output_norm");
        return a;
    }

    @Override
    public void addInputHook(LinearInputHook hook) {
        linears.addHook(hook);
    }

    @Override
    public void removeInputHook(LinearInputHook hook) {
        linears.removeHook(hook);
    }

    @Override
    public KvCache newKvCache(int capacity) {
        if (capacity < 1 || capacity > config.contextLength()) {
            throw new IllegalArgumentException("capacity " + capacity + " must be in 1.." + config.contextLength());
        }
        return new KvCache(config.blockCount(), capacity, config.headCount(), config.headDim());
    }

    /** A KV cache of {@code capacity} with {@code codec} set from the start, its storage as the codec needs (packed or floats). */
    @Override
    public KvCache newKvCache(int capacity, KvCache.Codec codec) {
        if (capacity < 1 || capacity > config.contextLength()) {
            throw new IllegalArgumentException("capacity " + capacity + " must be in 1.." + config.contextLength());
        }
        return new KvCache(config.blockCount(), capacity, config.headCount(), config.headDim(), codec);
    }

    @Override
    public float[] forward(KvCache cache, int[] tokens) {
        float[] hidden = forwardHidden(cache, tokens);
        int d = config.dim();
        return logits(java.util.Arrays.copyOfRange(hidden, (tokens.length - 1) * d, tokens.length * d), 1);
    }

    @Override
    public float[] forwardHidden(KvCache cache, int[] tokens) {
        OptConfig c = config;
        int n = tokens.length;
        int pos = cache.length();
        if (n == 0) throw new IllegalArgumentException("no tokens");
        if (pos + n > cache.capacity()) {
            throw new IllegalArgumentException("cache holds " + pos + " of " + cache.capacity() + " positions; " + n + " more do not fit");
        }
        int d = c.dim();
        float[] x = new float[n * d];
        for (int t = 0; t < n; t++) {
            if (tokens[t] < 0 || tokens[t] >= c.vocabSize()) throw new IllegalArgumentException("token id " + tokens[t] + " out of range");
            int e = tokens[t] * d, p = (pos + t + OptConfig.POSITION_OFFSET) * d;
            for (int i = 0; i < d; i++) x[t * d + i] = embedding[e + i] + positions[p + i];
        }
        float[] normed = new float[n * d];
        float[] q = new float[n * d];
        float[] k = new float[n * d];
        float[] v = new float[n * d];
        float[] attention = new float[n * d];
        float[] projected = new float[n * d];
        float[] hiddenFfn = new float[n * c.ffnDim()];
        for (int l = 0; l < c.blockCount(); l++) {
            String[] name = names[l];
            String attnNorm = "blk." + l + ".attn_norm", ffnNorm = "blk." + l + ".ffn_norm";
            float[] in = x;
            if (c.preNorm()) {
                layerNorm(attnNorm, x, n, normed);
                in = normed;
            }
            linears.runAll(new String[] {name[Q], name[K], name[V]}, in, n, new float[][] {q, k, v});
            cache.store(l, pos, k, v, n);
            Attention.compute(c.headCount(), c.headCount(), c.headDim(), cache, l, q, n, pos, attention);
            linears.run(name[O], attention, n, projected);
            VectorOps.addInPlace(x, projected, n * d);
            if (!c.preNorm()) layerNorm(attnNorm, x, n, x);

            in = x;
            if (c.preNorm()) {
                layerNorm(ffnNorm, x, n, normed);
                in = normed;
            }
            linears.run(name[UP], in, n, hiddenFfn);
            VectorOps.relu(hiddenFfn, n * c.ffnDim());
            linears.run(name[DOWN], hiddenFfn, n, projected);
            VectorOps.addInPlace(x, projected, n * d);
            if (!c.preNorm()) layerNorm(ffnNorm, x, n, x);
        }
        cache.advance(n);
        if (!c.preNorm()) return x;
        layerNorm("output_norm", x, n, normed);
        return normed;
    }

    private void layerNorm(String name, float[] x, int rows, float[] out) {
        VectorOps.layerNorm(x, normWeights.get(name), normBiases.get(name), config.layerNormEps(), rows, config.dim(), out);
    }

    @Override
    public float[] logits(float[] hidden, int rows) {
        float[] out = new float[rows * config.vocabSize()];
        linears.run("output", hidden, rows, out);
        return out;
    }
}
