package lowbit.model;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import lowbit.io.GgufFile;
import lowbit.io.GgufTensorInfo;

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
public final class LlamaModel {
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
    private final Map<String, LinearOp> linears = new LinkedHashMap<>();
    private final Rope rope;
    private final List<LinearInputHook> hooks = new CopyOnWriteArrayList<>();

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
        this.linears.putAll(linears);
    }

    /** Loads a {@code llama}-architecture GGUF file, dequantizing every weight to FP32. */
    public static LlamaModel load(GgufFile g) throws IOException {
        LlamaConfig c = LlamaConfig.fromGguf(g);
        float[] embedding = tensor(g, "token_embd.weight", c.dim(), c.vocabSize());
        float[][] attnNorm = new float[c.blockCount()][];
        float[][] ffnNorm = new float[c.blockCount()][];
        Map<String, LinearOp> linears = new LinkedHashMap<>();
        for (int l = 0; l < c.blockCount(); l++) {
            String p = "blk." + l + ".";
            attnNorm[l] = tensor(g, p + "attn_norm.weight", c.dim());
            ffnNorm[l] = tensor(g, p + "ffn_norm.weight", c.dim());
            linears.put(p + "attn_q", linear(g, p + "attn_q", c.dim(), c.dim()));
            linears.put(p + "attn_k", linear(g, p + "attn_k", c.dim(), c.kvDim()));
            linears.put(p + "attn_v", linear(g, p + "attn_v", c.dim(), c.kvDim()));
            linears.put(p + "attn_output", linear(g, p + "attn_output", c.dim(), c.dim()));
            linears.put(p + "ffn_gate", linear(g, p + "ffn_gate", c.dim(), c.ffnDim()));
            linears.put(p + "ffn_up", linear(g, p + "ffn_up", c.dim(), c.ffnDim()));
            linears.put(p + "ffn_down", linear(g, p + "ffn_down", c.ffnDim(), c.dim()));
        }
        float[] outputNorm = tensor(g, "output_norm.weight", c.dim());
        LinearOp output = g.hasTensor("output.weight")
                ? linear(g, "output", c.dim(), c.vocabSize())
                : new FloatLinear(embedding, null, c.vocabSize(), c.dim());
        linears.put("output", output);
        float[] freqFactors = g.hasTensor("rope_freqs.weight") ? tensor(g, "rope_freqs.weight", c.ropeDimensions() / 2) : null;
        return new LlamaModel(c, embedding, attnNorm, ffnNorm, outputNorm, linears, new Rope(c, freqFactors));
    }

    /** A tensor checked against its expected GGML dims (innermost first). */
    private static float[] tensor(GgufFile g, String name, long... dims) throws IOException {
        GgufTensorInfo t = g.tensor(name);
        if (!java.util.Arrays.equals(t.dims(), dims)) {
            throw new IOException("tensor " + name + " has dims " + java.util.Arrays.toString(t.dims())
                    + ", the configuration implies " + java.util.Arrays.toString(dims));
        }
        return g.readFloats(name);
    }

    private static LinearOp linear(GgufFile g, String name, int in, int out) throws IOException {
        float[] w = tensor(g, name + ".weight", in, out);
        float[] bias = g.hasTensor(name + ".bias") ? tensor(g, name + ".bias", out) : null;
        return new FloatLinear(w, bias, out, in);
    }

    public LlamaConfig config() {
        return config;
    }

    /** Names of all linear layers, block by block, then {@code "output"}. */
    public List<String> linearNames() {
        return Collections.unmodifiableList(new ArrayList<>(linears.keySet()));
    }

    /** The linear layer called {@code name}. */
    public LinearOp linear(String name) {
        LinearOp op = linears.get(name);
        if (op == null) throw new IllegalArgumentException("no linear layer " + name + "; names look like blk.0.attn_q or output");
        return op;
    }

    /** Replaces the linear layer {@code name}; the replacement must have the same shape. */
    public void replaceLinear(String name, LinearOp op) {
        LinearOp old = linear(name);
        if (op.inFeatures() != old.inFeatures() || op.outFeatures() != old.outFeatures()) {
            throw new IllegalArgumentException(name + " is " + old.outFeatures() + "×" + old.inFeatures()
                    + ", the replacement " + op.outFeatures() + "×" + op.inFeatures());
        }
        linears.put(name, op);
    }

    /**
     * The weight of a normalization, by its GGUF name without {@code .weight}: {@code
     * "blk.3.attn_norm"} (read by attn_q/k/v), {@code "blk.3.ffn_norm"} (read by ffn_gate/up) or
     * {@code "output_norm"}. A copy.
     */
    public float[] normWeight(String name) {
        return normArray(name).clone();
    }

    /**
     * Replaces a normalization's weight (same length), e.g. with a smoothing vector folded in: the
     * caller keeps the function unchanged by scaling the consuming layers' weight columns.
     */
    public void setNormWeight(String name, float[] weight) {
        float[] target = normArray(name);
        if (weight.length != target.length) {
            throw new IllegalArgumentException(name + " has " + target.length + " values, got " + weight.length);
        }
        for (float v : weight) {
            if (!Float.isFinite(v)) throw new IllegalArgumentException(name + ": norm weight " + v + " is not finite");
        }
        System.arraycopy(weight, 0, target, 0, target.length);
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

    public void addInputHook(LinearInputHook hook) {
        hooks.add(hook);
    }

    public void removeInputHook(LinearInputHook hook) {
        hooks.remove(hook);
    }

    /** A KV cache for one sequence of up to {@code capacity} tokens (at most the context length). */
    public KvCache newKvCache(int capacity) {
        if (capacity < 1 || capacity > config.contextLength()) {
            throw new IllegalArgumentException("capacity " + capacity + " must be in 1.." + config.contextLength());
        }
        return new KvCache(config.blockCount(), capacity, config.kvDim());
    }

    /**
     * Runs {@code tokens} after the positions already in {@code cache} (prefill when several, decode
     * when one) and returns the logits of the last token.
     */
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
            run(name[Q], normed, n, q);
            run(name[K], normed, n, k);
            run(name[V], normed, n, v);
            rope.apply(q, n, c.headCount(), pos);
            rope.apply(k, n, c.kvHeadCount(), pos);
            cache.store(l, pos, k, v, n);
            Attention.compute(c, cache, l, q, n, pos, attention);
            run(name[O], attention, n, projected);
            VectorOps.addInPlace(x, projected, n * dim);
            // SwiGLU feed-forward
            VectorOps.rmsNorm(x, ffnNorm[l], c.rmsEps(), n, dim, normed);
            run(name[GATE], normed, n, gate);
            run(name[UP], normed, n, up);
            VectorOps.siluMultiply(gate, up, n * c.ffnDim());
            run(name[DOWN], gate, n, projected);
            VectorOps.addInPlace(x, projected, n * dim);
        }
        cache.advance(n);
        VectorOps.rmsNorm(x, outputNorm, c.rmsEps(), n, dim, normed);
        return normed;
    }

    /** Logits ({@code rows × vocabSize}) of {@code rows} final hidden states from {@link #forwardHidden}. */
    public float[] logits(float[] hidden, int rows) {
        float[] out = new float[rows * config.vocabSize()];
        run("output", hidden, rows, out);
        return out;
    }

    private void run(String name, float[] x, int tokens, float[] y) {
        LinearOp op = linears.get(name);
        for (LinearInputHook hook : hooks) hook.onInput(name, x, tokens, op.inFeatures());
        op.forward(x, tokens, y);
    }
}
