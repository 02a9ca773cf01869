package lowbit.model;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.io.GgufFile;
import lowbit.io.GgufTensorInfo;
import lowbit.io.HfCheckpoint;

/**
 * A LLaMA-family decoder (LLaMA 2/3, SmolLM2, Mistral-style configurations), written to be read
 * top to bottom:
 *
 * <pre>
 *   x = embedding[tokens]
 *   for each block:  x += attn_output(attention(rope(attn_q(n)), rope(attn_k(n)), attn_v(n)))  with n = rmsnorm(x)
 *                    x += ffn_down(silu(ffn_gate(n)) * ffn_up(n))                                 with n = rmsnorm(x)
 *   logits = output(rmsnorm(x))
 * </pre>
 *
 * <p>Every linear layer is a {@link LinearOp} named like its GGUF tensor without {@code .weight}
 * ({@code "blk.3.attn_q"}, {@code "blk.3.ffn_down"}, ..., {@code "output"}); {@link #replaceLinear}
 * swaps one, e.g. for a quantized layer. When the file has no {@code output.weight} the output
 * layer shares the token embedding (tied embeddings). RoPE uses the adjacent-pair rotation that
 * matches the Q/K row order of GGUF files (see {@link Rope}).
 *
 * <p>{@link #forward} runs a batch of tokens (prefill) or a single one (decode) against a {@link
 * KvCache}. Instances are not thread-safe: run one forward pass at a time.
 */
public final class LlamaModel implements DecoderModel {
    /** Linear layers of one block, in the order they run. */
    public static final List<String> BLOCK_LINEARS =
            List.of("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down");
    private static final int Q = 0, K = 1, V = 2, O = 3, GATE = 4, UP = 5, DOWN = 6;

    private final LlamaConfig config;
    private final float[] embedding; // [vocab][dim]
    private final float[][] attnNorm;
    private final float[][] ffnNorm;
    private final float[] outputNorm;
    private final String[][] names;
    private final String[][] qkvNames;
    private final String[][] gateUpNames;
    private final LinearLayers linears = new LinearLayers();
    private final Rope rope;

    private LlamaModel(LlamaConfig config, float[] embedding, float[][] attnNorm, float[][] ffnNorm, float[] outputNorm,
                       Map<String, LinearOp> linears, Rope rope) {
        this.config = config;
        this.embedding = embedding;
        this.attnNorm = attnNorm;
        this.ffnNorm = ffnNorm;
        this.outputNorm = outputNorm;
        this.rope = rope;
        this.names = new String[config.blockCount()][BLOCK_LINEARS.size()];
        for (int l = 0; l < config.blockCount(); l++) {
            for (int i = 0; i < BLOCK_LINEARS.size(); i++) names[l][i] = "blk." + l + "." + BLOCK_LINEARS.get(i);
        }
        this.qkvNames = new String[config.blockCount()][];
        this.gateUpNames = new String[config.blockCount()][];
        for (int l = 0; l < config.blockCount(); l++) {
            qkvNames[l] = new String[] {names[l][Q], names[l][K], names[l][V]};
            gateUpNames[l] = new String[] {names[l][GATE], names[l][UP]};
        }
        linears.forEach(this.linears::add);
    }

    /** Loads a {@code llama}-architecture GGUF file, dequantizing every weight to FP32. */
    public static LlamaModel load(GgufFile g) throws IOException {
        return build(LlamaConfig.fromGguf(g), ggufWeights(g));
    }

    /**
     * Loads a Hugging Face LLaMA-family checkpoint ({@code config.json} + safetensors, F32/F16/BF16),
     * converting each tensor to FP32 from its memory mapping; q_proj/k_proj rows are permuted into
     * the adjacent-pair RoPE order (see {@link HfLlamaWeights}).
     */
    public static LlamaModel load(HfCheckpoint hf) throws IOException {
        LlamaConfig c = LlamaConfig.fromHf(hf);
        return build(c, new HfLlamaWeights(hf, c));
    }

    private static LlamaModel build(LlamaConfig c, WeightSource g) throws IOException {
        float[] embedding = g.read("token_embd.weight", c.dim(), c.vocabSize());
        float[][] attnNorm = new float[c.blockCount()][];
        float[][] ffnNorm = new float[c.blockCount()][];
        Map<String, LinearOp> linears = new LinkedHashMap<>();
        for (int l = 0; l < c.blockCount(); l++) {
            String p = "blk." + l + ".";
            attnNorm[l] = g.read(p + "attn_norm.weight", c.dim());
            ffnNorm[l] = g.read(p + "ffn_norm.weight", c.dim());
            linears.put(p + "attn_q", linear(g, p + "attn_q", c.dim(), c.dim()));
            linears.put(p + "attn_k", linear(g, p + "attn_k", c.dim(), c.kvDim()));
            linears.put(p + "attn_v", linear(g, p + "attn_v", c.dim(), c.kvDim()));
            linears.put(p + "attn_output", linear(g, p + "attn_output", c.dim(), c.dim()));
            linears.put(p + "ffn_gate", linear(g, p + "ffn_gate", c.dim(), c.ffnDim()));
            linears.put(p + "ffn_up", linear(g, p + "ffn_up", c.dim(), c.ffnDim()));
            linears.put(p + "ffn_down", linear(g, p + "ffn_down", c.ffnDim(), c.dim()));
        }
        float[] outputNorm = g.read("output_norm.weight", c.dim());
        LinearOp output = g.has("output.weight")
                ? linear(g, "output", c.dim(), c.vocabSize())
                : new FloatLinear(embedding, null, c.vocabSize(), c.dim());
        linears.put("output", output);
        float[] freqFactors = g.has("rope_freqs.weight") ? g.read("rope_freqs.weight", c.ropeDimensions() / 2) : null;
        return new LlamaModel(c, embedding, attnNorm, ffnNorm, outputNorm, linears, new Rope(c, freqFactors));
    }

    /** A GGUF file's tensors as they are, checked against their expected GGML dims (innermost first). */
    private static WeightSource ggufWeights(GgufFile g) {
        return new WeightSource() {
            @Override
            public boolean has(String name) {
                return g.hasTensor(name);
            }

            @Override
            public float[] read(String name, long... dims) throws IOException {
                GgufTensorInfo t = g.tensor(name);
                if (!java.util.Arrays.equals(t.dims(), dims)) {
                    throw new IOException("tensor " + name + " has dims " + java.util.Arrays.toString(t.dims())
                            + ", the configuration implies " + java.util.Arrays.toString(dims));
                }
                return g.readFloats(name);
            }
        };
    }

    private static LinearOp linear(WeightSource g, String name, int in, int out) throws IOException {
        float[] w = g.read(name + ".weight", in, out);
        float[] bias = g.has(name + ".bias") ? g.read(name + ".bias", out) : null;
        return new FloatLinear(w, bias, out, in);
    }

    public LlamaConfig config() {
        return config;
    }

    @Override
    public String architecture() {
        return "llama";
    }

    @Override
    public Shape shape() {
        LlamaConfig c = config;
        return new Shape(c.blockCount(), c.dim(), c.ffnDim(), c.headCount(), c.kvHeadCount(), c.vocabSize(), c.contextLength());
    }

    /** Names of all linear layers, block by block, then {@code "output"}. */
    @Override
    public List<String> linearNames() {
        return linears.names();
    }

    /** The linear layer called {@code name}. */
    @Override
    public LinearOp linear(String name) {
        return linears.get(name);
    }

    /** Replaces the linear layer {@code name}; the replacement must have the same shape. */
    @Override
    public void replaceLinear(String name, LinearOp op) {
        linears.replace(name, op);
    }

    /** RMSNorm has no bias: always null (after checking the name). */
    @Override
    public float[] normBias(String name) {
        normArray(name);
        return null;
    }

    @Override
    public void setNormBias(String name, float[] bias) {
        normArray(name);
        throw new IllegalArgumentException(name + " is an RMSNorm and has no bias");
    }

    @Override
    public boolean normsFeedLinears() {
        return true;
    }

    /**
     * The weight of a normalization, by its GGUF name without {@code .weight}: {@code
     * "blk.3.attn_norm"} (read by attn_q/k/v), {@code "blk.3.ffn_norm"} (read by ffn_gate/up) or
     * {@code "output_norm"}. A copy.
     */
    @Override
    public float[] normWeight(String name) {
        return normArray(name).clone();
    }

    /**
     * Replaces a normalization's weight (same length), e.g. with a smoothing vector folded in: the
     * caller keeps the function unchanged by scaling the consuming layers' weight columns.
     */
    @Override
    public void setNormWeight(String name, float[] weight) {
        NormValues.set(normArray(name), weight, name);
    }

    private float[] normArray(String name) {
        if (name.equals("output_norm")) return outputNorm;
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("blk\\.(\\d+)\\.(attn_norm|ffn_norm)").matcher(name);
        if (m.matches()) {
            int block = Integer.parseInt(m.group(1));
            if (block < config.blockCount()) return m.group(2).equals("attn_norm") ? attnNorm[block] : ffnNorm[block];
        }
        throw new IllegalArgumentException("no normalization " + name + "; names look like blk.0.attn_norm, blk.0.ffn_norm or output_norm");
    }

    @Override
    public void addInputHook(LinearInputHook hook) {
        linears.addHook(hook);
    }

    @Override
    public void removeInputHook(LinearInputHook hook) {
        linears.removeHook(hook);
    }

    /** A KV cache for one sequence of up to {@code capacity} tokens (at most the context length). */
    @Override
    public KvCache newKvCache(int capacity) {
        if (capacity < 1 || capacity > config.contextLength()) {
            throw new IllegalArgumentException("capacity " + capacity + " must be in 1.." + config.contextLength());
        }
        return new KvCache(config.blockCount(), capacity, config.kvHeadCount(), config.headDim());
    }

    /** A KV cache of {@code capacity} with {@code codec} set from the start, its storage as the codec needs (packed or floats). */
    @Override
    public KvCache newKvCache(int capacity, KvCache.Codec codec) {
        if (capacity < 1 || capacity > config.contextLength()) {
            throw new IllegalArgumentException("capacity " + capacity + " must be in 1.." + config.contextLength());
        }
        return new KvCache(config.blockCount(), capacity, config.kvHeadCount(), config.headDim(), codec);
    }

    /**
     * Runs {@code tokens} after the positions already in {@code cache} (prefill when several, decode
     * when one) and returns the logits of the last token.
     */
    @Override
    public float[] forward(KvCache cache, int[] tokens) {
        float[] hidden = forwardHidden(cache, tokens);
        float[] last = java.util.Arrays.copyOfRange(hidden, (tokens.length - 1) * config.dim(), tokens.length * config.dim());
        return logits(last, 1);
    }

    /**
     * Runs {@code tokens} like {@link #forward} but returns the final normalized hidden states of
     * every token ({@code tokens × dim}); {@link #logits} turns any rows of it into logits, so
     * callers that need all positions (perplexity) can do so in chunks.
     */
    @Override
    public float[] forwardHidden(KvCache cache, int[] tokens) {
        LlamaConfig c = config;
        int n = tokens.length;
        int pos = cache.length();
        if (n == 0) throw new IllegalArgumentException("no tokens");
        if (pos + n > cache.capacity()) {
            throw new IllegalArgumentException("cache holds " + pos + " of " + cache.capacity() + " positions; " + n + " more do not fit");
        }
        int dim = c.dim();
        float[] x = new float[n * dim];
        for (int t = 0; t < n; t++) {
            if (tokens[t] < 0 || tokens[t] >= c.vocabSize()) throw new IllegalArgumentException("token id " + tokens[t] + " out of range");
            System.arraycopy(embedding, tokens[t] * dim, x, t * dim, dim);
        }
        float[] normed = new float[n * dim];
        float[] q = new float[n * dim];
        float[] k = new float[n * c.kvDim()];
        float[] v = new float[n * c.kvDim()];
        float[] attention = new float[n * dim];
        float[] projected = new float[n * dim];
        float[] gate = new float[n * c.ffnDim()];
        float[] up = new float[n * c.ffnDim()];

        for (int l = 0; l < c.blockCount(); l++) {
            String[] name = names[l];
            // attention
            VectorOps.rmsNorm(x, attnNorm[l], c.rmsEps(), n, dim, normed);
            linears.runAll(qkvNames[l], normed, n, new float[][] {q, k, v});
            rope.apply(q, n, c.headCount(), pos);
            rope.apply(k, n, c.kvHeadCount(), pos);
            cache.store(l, pos, k, v, n);
            Attention.compute(c.headCount(), c.kvHeadCount(), c.headDim(), cache, l, q, n, pos, attention);
            run(name[O], attention, n, projected);
            VectorOps.addInPlace(x, projected, n * dim);
            // SwiGLU feed-forward
            VectorOps.rmsNorm(x, ffnNorm[l], c.rmsEps(), n, dim, normed);
            linears.runAll(gateUpNames[l], normed, n, new float[][] {gate, up});
            VectorOps.siluMultiply(gate, up, n * c.ffnDim());
            run(name[DOWN], gate, n, projected);
            VectorOps.addInPlace(x, projected, n * dim);
        }
        cache.advance(n);
        VectorOps.rmsNorm(x, outputNorm, c.rmsEps(), n, dim, normed);
        return normed;
    }

    /** Logits ({@code rows × vocabSize}) of {@code rows} final hidden states from {@link #forwardHidden}. */
    @Override
    public float[] logits(float[] hidden, int rows) {
        float[] out = new float[rows * config.vocabSize()];
        run("output", hidden, rows, out);
        return out;
    }

    private void run(String name, float[] x, int tokens, float[] y) {
        linears.run(name, x, tokens, y);
    }
}
