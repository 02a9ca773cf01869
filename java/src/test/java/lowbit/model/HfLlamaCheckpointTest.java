package lowbit.model;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import lowbit.io.GgufFile;
import lowbit.io.GgufTensorInfo;
import lowbit.io.HfCheckpoint;
import lowbit.io.MalformedModelException;
import lowbit.io.RealModelFixture;
import lowbit.io.SafetensorsDType;
import lowbit.io.SafetensorsWriter;
import lowbit.tokenizer.BpeTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Hugging Face LLaMA checkpoints: the real model rewritten in HF layout, tiny random ones in every float format, bad input. */
class HfLlamaCheckpointTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    /**
     * llama.cpp's converter applies {@code w.reshape(n_head, 2, d/2, in).swapaxes(1, 2)} to q/k:
     * GGUF row {@code h·d + 2i + j} is HF row {@code h·d + j·d/2 + i}. This undoes it, written
     * independently of the loader's permutation.
     */
    static float[] unpermute(float[] gguf, int heads, int rows, int cols) {
        int d = rows / heads;
        float[] hf = new float[gguf.length];
        for (int r = 0; r < rows; r++) {
            int h = r / d, within = r % d, i = within / 2, j = within % 2;
            int hfRow = h * d + j * (d / 2) + i;
            System.arraycopy(gguf, r * cols, hf, hfRow * cols, cols);
        }
        return hf;
    }

    @Test
    void realModelInHuggingFaceLayoutGivesTheGgufLogits() throws IOException {
        GgufFile g = RealModelFixture.gguf();
        LlamaModel fromGguf = LlamaModel.load(g);
        LlamaConfig c = fromGguf.config();
        SafetensorsWriter w = new SafetensorsWriter();
        for (GgufTensorInfo t : g.tensors().values()) {
            long[] dims = t.dims();
            long[] shape = new long[dims.length];
            for (int i = 0; i < dims.length; i++) shape[i] = dims[dims.length - 1 - i];
            float[] v = g.readFloats(t.name());
            if (t.name().endsWith("attn_q.weight")) v = unpermute(v, c.headCount(), c.dim(), c.dim());
            if (t.name().endsWith("attn_k.weight")) v = unpermute(v, c.kvHeadCount(), c.kvDim(), c.dim());
            w.add(HfLlamaWeights.hfName(t.name()), v, shape);
        }
        Path dir = Files.createDirectory(tmp.resolve("smollm2-hf"));
        w.writeSharded(dir, SafetensorsDType.F32, 2);
        ObjectNode config = llamaConfig(c);
        config.put("tie_word_embeddings", true);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config));

        LlamaModel fromHf;
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            fromHf = LlamaModel.load(hf);
        }
        assertEquals(c, fromHf.config());
        int[] tokens = BpeTokenizer.fromGguf(g).encode("The quick brown fox jumps over the lazy dog; 12 + 30 = 42.");
        float[] expected = fromGguf.logits(fromGguf.forwardHidden(fromGguf.newKvCache(tokens.length), tokens), tokens.length);
        float[] actual = fromHf.logits(fromHf.forwardHidden(fromHf.newKvCache(tokens.length), tokens), tokens.length);
        float maxDiff = 0;
        for (int i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(expected[i] - actual[i]));
        assertTrue(maxDiff <= 1e-5f, "max |logit difference| over " + tokens.length + " positions: " + maxDiff);

        // without the q/k un-permutation the HF checkpoint would be read wrongly: the check above can fail
        float[] q = g.readFloats("blk.0.attn_q.weight");
        assertFalse(java.util.Arrays.equals(q, unpermute(q, c.headCount(), c.dim(), c.dim())));
    }

    static ObjectNode llamaConfig(LlamaConfig c) {
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
        return n;
    }

    /**
     * transformers 5 writes RoPE settings only inside {@code rope_parameters} (no top-level
     * rope_theta / rope_scaling); a loader reading only the top level would silently use theta 10000.
     */
    @Test
    void ropeParametersOfTransformers5AreRead() throws IOException {
        ObjectNode config = llamaConfig(TINY);
        config.remove("rope_theta");
        config.remove("rope_scaling");
        ObjectNode params = config.putObject("rope_parameters");
        params.put("rope_type", "default");
        params.put("rope_theta", 500000.0);
        Path dir = checkpoint("rope5", tinyWeights(3, false), SafetensorsDType.F32, 1, config);
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            LlamaConfig c = LlamaConfig.fromHf(hf);
            assertEquals(500000.0, c.ropeFreqBase());
            assertEquals(1.0, c.ropeScale());
        }
        params.put("rope_type", "linear");
        params.put("factor", 4.0);
        Path linear = checkpoint("rope5-linear", tinyWeights(3, false), SafetensorsDType.F32, 1, config);
        try (HfCheckpoint hf = HfCheckpoint.open(linear)) {
            LlamaConfig c = LlamaConfig.fromHf(hf);
            assertEquals(500000.0, c.ropeFreqBase());
            assertEquals(4.0, c.ropeScale());
        }
    }

    // ---- tiny random checkpoints -----------------------------------------------------------------

    private static final LlamaConfig TINY = new LlamaConfig(2, 16, 24, 4, 2, 4, 4, 10000.0, 1.0, 1e-5f, 32, 40);

    /** Random weights on a grid of 1/64 in [-1, 1] (exact in F16 and BF16), HF names and shapes. */
    private static SafetensorsWriter tinyWeights(long seed, boolean withLmHead) {
        Random r = new Random(seed);
        SafetensorsWriter w = new SafetensorsWriter();
        LlamaConfig c = TINY;
        w.add("model.embed_tokens.weight", grid(r, c.vocabSize() * c.dim()), c.vocabSize(), c.dim());
        for (int l = 0; l < c.blockCount(); l++) {
            String p = "model.layers." + l + ".";
            w.add(p + "input_layernorm.weight", grid(r, c.dim()), c.dim());
            w.add(p + "post_attention_layernorm.weight", grid(r, c.dim()), c.dim());
            w.add(p + "self_attn.q_proj.weight", grid(r, c.dim() * c.dim()), c.dim(), c.dim());
            w.add(p + "self_attn.k_proj.weight", grid(r, c.kvDim() * c.dim()), c.kvDim(), c.dim());
            w.add(p + "self_attn.v_proj.weight", grid(r, c.kvDim() * c.dim()), c.kvDim(), c.dim());
            w.add(p + "self_attn.o_proj.weight", grid(r, c.dim() * c.dim()), c.dim(), c.dim());
            w.add(p + "mlp.gate_proj.weight", grid(r, c.ffnDim() * c.dim()), c.ffnDim(), c.dim());
            w.add(p + "mlp.up_proj.weight", grid(r, c.ffnDim() * c.dim()), c.ffnDim(), c.dim());
            w.add(p + "mlp.down_proj.weight", grid(r, c.dim() * c.ffnDim()), c.dim(), c.ffnDim());
        }
        w.add("model.norm.weight", grid(r, c.dim()), c.dim());
        if (withLmHead) w.add("lm_head.weight", grid(r, c.vocabSize() * c.dim()), c.vocabSize(), c.dim());
        return w;
    }

    private static float[] grid(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (r.nextInt(129) - 64) / 64f;
        return v;
    }

    private Path checkpoint(String name, SafetensorsWriter w, SafetensorsDType dtype, int shards, ObjectNode config) throws IOException {
        Path dir = Files.createDirectory(tmp.resolve(name));
        if (shards == 1) w.write(dir.resolve("model.safetensors"), dtype);
        else w.writeSharded(dir, dtype, shards);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config));
        return dir;
    }

    private static float[] logits(Path dir, int[] tokens) throws IOException {
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            LlamaModel m = LlamaModel.load(hf);
            return m.logits(m.forwardHidden(m.newKvCache(tokens.length), tokens), tokens.length);
        }
    }

    @Test
    void f32SingleFileBf16ShardsAndF16GiveIdenticalLogits() throws IOException {
        SafetensorsWriter w = tinyWeights(7, true);
        int[] tokens = {3, 17, 39, 0, 22, 5, 5, 11};
        float[] f32 = logits(checkpoint("f32", w, SafetensorsDType.F32, 1, llamaConfig(TINY)), tokens);
        float[] bf16 = logits(checkpoint("bf16", w, SafetensorsDType.BF16, 3, llamaConfig(TINY)), tokens);
        float[] f16 = logits(checkpoint("f16", w, SafetensorsDType.F16, 1, llamaConfig(TINY)), tokens);
        assertEquals(tokens.length * TINY.vocabSize(), f32.length);
        assertArrayEquals(f32, bf16, 0f);
        assertArrayEquals(f32, f16, 0f);
        // a tied checkpoint differs (the head is the embedding)
        ObjectNode tied = llamaConfig(TINY).put("tie_word_embeddings", true);
        float[] tiedLogits = logits(checkpoint("tied", tinyWeights(7, false), SafetensorsDType.F32, 1, tied), tokens);
        assertFalse(java.util.Arrays.equals(f32, tiedLogits));
    }

    @Test
    void theHfGraphMatchesAnIndependentRotateHalfReference() throws IOException {
        SafetensorsWriter w = tinyWeights(11, true);
        Path dir = checkpoint("ref", w, SafetensorsDType.F32, 1, llamaConfig(TINY));
        int[] tokens = {1, 2, 30, 4, 12, 12, 39};
        float[] actual = logits(dir, tokens);
        double[] expected;
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            expected = LlamaReference.logits(hf, TINY, tokens);
        }
        double maxRel = 0, maxAbs = 0;
        for (int i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
        for (int i = 0; i < expected.length; i++) maxRel = Math.max(maxRel, Math.abs(actual[i] - expected[i]) / maxAbs);
        assertTrue(maxRel < 1e-5, "max |java - FP64 reference| / max |logit| = " + maxRel);
    }

    @Test
    void badCheckpointsAreRejectedByName() throws IOException {
        SafetensorsWriter w = tinyWeights(3, true);
        ObjectNode noHidden = llamaConfig(TINY);
        noHidden.remove("hidden_size");
        Path d1 = checkpoint("nohidden", w, SafetensorsDType.F32, 1, noHidden);
        assertTrue(assertThrows(MalformedModelException.class, () -> logits(d1, new int[] {1})).getMessage().contains("hidden_size"));

        ObjectNode wrongFfn = llamaConfig(TINY).put("intermediate_size", 32);
        Path d2 = checkpoint("wrongffn", w, SafetensorsDType.F32, 1, wrongFfn);
        String m2 = assertThrows(MalformedModelException.class, () -> logits(d2, new int[] {1})).getMessage();
        assertTrue(m2.contains("mlp.gate_proj.weight") && m2.contains("[24, 16]"), m2);

        ObjectNode threeLayers = llamaConfig(TINY).put("num_hidden_layers", 3);
        Path d3 = checkpoint("missing", w, SafetensorsDType.F32, 1, threeLayers);
        assertTrue(assertThrows(MalformedModelException.class, () -> logits(d3, new int[] {1})).getMessage()
                .contains("model.layers.2.input_layernorm.weight"));

        Path d4 = checkpoint("nohead", tinyWeights(3, false), SafetensorsDType.F32, 1, llamaConfig(TINY));
        assertTrue(assertThrows(MalformedModelException.class, () -> logits(d4, new int[] {1})).getMessage().contains("lm_head"));

        Path d5 = checkpoint("opt", w, SafetensorsDType.F32, 1, llamaConfig(TINY).put("model_type", "gpt_neox"));
        assertTrue(assertThrows(MalformedModelException.class, () -> logits(d5, new int[] {1})).getMessage().contains("gpt_neox"));

        Path d6 = checkpoint("badjson", w, SafetensorsDType.F32, 1, llamaConfig(TINY));
        Files.writeString(d6.resolve("config.json"), "{\"hidden_size\": 16,");
        assertTrue(assertThrows(MalformedModelException.class, () -> logits(d6, new int[] {1})).getMessage().contains("not valid JSON"));

        ObjectNode yarn = llamaConfig(TINY);
        yarn.putObject("rope_scaling").put("rope_type", "yarn").put("factor", 4.0);
        Path d7 = checkpoint("yarn", w, SafetensorsDType.F32, 1, yarn);
        assertTrue(assertThrows(MalformedModelException.class, () -> logits(d7, new int[] {1})).getMessage().contains("yarn"));
    }

    @Test
    void permutationRoundTrips() {
        float[] w = new float[8 * 3];
        for (int i = 0; i < w.length; i++) w[i] = i;
        float[] adjacent = HfLlamaWeights.toAdjacentPairs(w, 2, 4, 3);
        assertArrayEquals(w, HfLlamaWeights.toRotateHalf(adjacent, 2, 4, 3), 0f);
        assertArrayEquals(unpermute(adjacent, 2, 8, 3), w, 0f);
        // head 0 of 4 rows: HF rows (0, 1 | 2, 3) pair 0 with 2 and 1 with 3 -> GGUF order 0, 2, 1, 3
        assertArrayEquals(new float[] {0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11}, java.util.Arrays.copyOf(adjacent, 12), 0f);
    }
}
