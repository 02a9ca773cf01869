package lowbit.model;

import static org.junit.jupiter.api.Assertions.*;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import lowbit.io.HfCheckpoint;
import lowbit.io.MalformedModelException;
import lowbit.io.SafetensorsDType;
import lowbit.io.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A tiny random OPT written as a Hugging Face checkpoint, against the independent FP64 {@link OptReference}. */
public class OptModelTest {
    public static final int DIM = 16, FFN = 40, HEADS = 4, VOCAB = 50, MAX_POS = 24, BLOCKS = 2;
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    /** Writes a random OPT checkpoint into {@code dir}; weights ~ N(0, 0.3²), norms around 1. */
    public static Path writeTinyOpt(Path dir, long seed, String prefix, boolean preNorm, SafetensorsDType dtype) throws IOException {
        Random r = new Random(seed);
        SafetensorsWriter w = new SafetensorsWriter();
        w.add(prefix + "embed_tokens.weight", gauss(r, VOCAB * DIM, 0.5, 0), VOCAB, DIM);
        w.add(prefix + "embed_positions.weight", gauss(r, (MAX_POS + 2) * DIM, 0.5, 0), MAX_POS + 2, DIM);
        for (int l = 0; l < BLOCKS; l++) {
            String p = prefix + "layers." + l + ".";
            for (String proj : List.of("q_proj", "k_proj", "v_proj", "out_proj")) {
                w.add(p + "self_attn." + proj + ".weight", gauss(r, DIM * DIM, 0.3, 0), DIM, DIM);
                w.add(p + "self_attn." + proj + ".bias", gauss(r, DIM, 0.1, 0), DIM);
            }
            w.add(p + "fc1.weight", gauss(r, FFN * DIM, 0.3, 0), FFN, DIM);
            w.add(p + "fc1.bias", gauss(r, FFN, 0.1, 0), FFN);
            w.add(p + "fc2.weight", gauss(r, DIM * FFN, 0.2, 0), DIM, FFN);
            w.add(p + "fc2.bias", gauss(r, DIM, 0.1, 0), DIM);
            for (String norm : List.of("self_attn_layer_norm", "final_layer_norm")) {
                w.add(p + norm + ".weight", gauss(r, DIM, 0.2, 1), DIM);
                w.add(p + norm + ".bias", gauss(r, DIM, 0.1, 0), DIM);
            }
        }
        if (preNorm) {
            w.add(prefix + "final_layer_norm.weight", gauss(r, DIM, 0.2, 1), DIM);
            w.add(prefix + "final_layer_norm.bias", gauss(r, DIM, 0.1, 0), DIM);
        }
        Files.createDirectories(dir);
        w.write(dir.resolve("model.safetensors"), dtype);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config(preNorm)));
        return dir;
    }

    static ObjectNode config(boolean preNorm) {
        ObjectNode c = JSON.createObjectNode();
        c.put("model_type", "opt");
        c.putArray("architectures").add("OPTForCausalLM");
        c.put("hidden_size", DIM).put("ffn_dim", FFN).put("num_attention_heads", HEADS).put("num_hidden_layers", BLOCKS);
        c.put("max_position_embeddings", MAX_POS).put("vocab_size", VOCAB).put("word_embed_proj_dim", DIM);
        c.put("do_layer_norm_before", preNorm).put("activation_function", "relu").put("enable_bias", true);
        c.put("layer_norm_elementwise_affine", true).put("tie_word_embeddings", true);
        return c;
    }

    private static float[] gauss(Random r, int n, double sd, double mean) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (mean + sd * r.nextGaussian());
        return v;
    }

    private static void assertMatchesReference(Path dir, String prefix, boolean preNorm, int[] tokens) throws IOException {
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            OptModel m = OptModel.load(hf);
            float[] actual = m.logits(m.forwardHidden(m.newKvCache(tokens.length), tokens), tokens.length);
            double[] expected = OptReference.logits(hf, prefix, DIM, FFN, HEADS, VOCAB, MAX_POS, BLOCKS, preNorm, tokens);
            double maxAbs = 0, maxDiff = 0;
            for (double e : expected) maxAbs = Math.max(maxAbs, Math.abs(e));
            for (int i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
            assertTrue(maxAbs > 1, "logits are not trivial: " + maxAbs);
            assertTrue(maxDiff / maxAbs < 2e-6, "max |java - FP64| / max |logit| = " + maxDiff / maxAbs + " (pre-norm " + preNorm + ")");
        }
    }

    @Test
    void preNormOptMatchesTheFp64Reference() throws IOException {
        Path dir = writeTinyOpt(tmp.resolve("pre"), 1, "model.decoder.", true, SafetensorsDType.F32);
        assertMatchesReference(dir, "model.decoder.", true, new int[] {2, 45, 7, 7, 19, 0, 33, 12, 49, 3});
    }

    @Test
    void postNormOptWithDecoderPrefixMatchesTheFp64Reference() throws IOException {
        Path dir = writeTinyOpt(tmp.resolve("post"), 2, "decoder.", false, SafetensorsDType.F32);
        assertMatchesReference(dir, "decoder.", false, new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24});
    }

    @Test
    void decodeStepByStepEqualsPrefillAndHooksSeeEveryLinear() throws IOException {
        Path dir = writeTinyOpt(tmp.resolve("decode"), 3, "model.decoder.", true, SafetensorsDType.BF16);
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            OptModel m = OptModel.load(hf);
            int[] tokens = {5, 9, 11, 30, 2, 2, 41};
            List<String> seen = new ArrayList<>();
            LinearInputHook hook = (layer, x, n, in) -> seen.add(layer + ":" + n + "x" + in);
            m.addInputHook(hook);
            float[] batched = m.forward(m.newKvCache(MAX_POS), tokens);
            m.removeInputHook(hook);
            assertEquals(BLOCKS * 6 + 1, seen.size());
            assertEquals(List.of("blk.0.attn_q:7x16", "blk.0.attn_k:7x16", "blk.0.attn_v:7x16", "blk.0.attn_output:7x16",
                    "blk.0.ffn_up:7x16", "blk.0.ffn_down:7x40"), seen.subList(0, 6));
            assertEquals("output:1x16", seen.get(seen.size() - 1));
            KvCache cache = m.newKvCache(MAX_POS);
            float[] last = null;
            for (int t : tokens) last = m.forward(cache, new int[] {t});
            assertArrayEquals(batched, last, 1e-4f);
            assertEquals(-1, m.linearNames().indexOf("blk.0.ffn_gate"));
            assertNotNull(m.normBias("blk.1.ffn_norm"));
            assertThrows(IllegalArgumentException.class, () -> m.forward(m.newKvCache(MAX_POS), new int[] {VOCAB}));
            assertThrows(IllegalArgumentException.class, () -> m.newKvCache(MAX_POS + 1));
        }
    }

    @Test
    void unsupportedOrBrokenCheckpointsAreRejectedByName() throws IOException {
        Path dir = writeTinyOpt(tmp.resolve("bad"), 4, "model.decoder.", true, SafetensorsDType.F32);
        String[][] cases = {
                {"word_embed_proj_dim", "8", "word_embed_proj_dim"},
                {"activation_function", "\"gelu\"", "gelu"},
                {"ffn_dim", "41", "fc1.weight"},
                {"max_position_embeddings", "30", "embed_positions.weight"},
                {"model_type", "\"llama\"", "not opt"},
        };
        for (String[] c : cases) {
            ObjectNode config = config(true);
            config.set(c[0], JSON.readTree(c[1]));
            Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config));
            try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
                String message = assertThrows(MalformedModelException.class, () -> OptModel.load(hf)).getMessage();
                assertTrue(message.contains(c[2]), c[0] + ": " + message);
            }
        }
        ObjectNode noHeads = config(true);
        noHeads.remove("num_attention_heads");
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(noHeads));
        try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
            assertTrue(assertThrows(MalformedModelException.class, () -> OptModel.load(hf)).getMessage().contains("num_attention_heads"));
        }
    }
}
