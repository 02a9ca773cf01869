package lowbit.model;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import lowbit.io.RealModelFixture;
import lowbit.tokenizer.BpeTokenizer;
import lowbit.tokenizer.ChatPrompt;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** SmolLM2-135M-Instruct end to end (skipped with a message when the model cannot be obtained). */
class LlamaModelIntegrationTest {
    private static LlamaModel model;
    private static BpeTokenizer tokenizer;

    @BeforeAll
    static void load() throws IOException {
        model = LlamaModel.load(RealModelFixture.gguf());
        tokenizer = BpeTokenizer.fromGguf(RealModelFixture.gguf());
    }

    @Test
    void readsTheConfigurationFromMetadata() {
        LlamaConfig c = model.config();
        assertEquals(new LlamaConfig(30, 576, 1536, 9, 3, 64, 64, 100000.0, 1.0, c.rmsEps(), 8192, 49152), c);
        assertEquals(1e-5f, c.rmsEps(), 1e-9f);
        assertEquals(30 * 7 + 1, model.linearNames().size());
        assertEquals("output", model.linearNames().get(model.linearNames().size() - 1));
    }

    @Test
    void answersTheCapitalOfFranceGreedily() {
        int[] prompt = tokenizer.encodeWithSpecialTokens(ChatPrompt.chatMl(ChatPrompt.DEFAULT_SYSTEM, "What is the capital of France?"));
        int[] reply = new Generator(model).generate(prompt, 16, Sampler.greedy(), id -> id == tokenizer.eosId(), null);
        String text = tokenizer.decode(reply);
        assertTrue(text.contains("Paris"), "reply: " + text);
    }

    @Test
    void prefillEqualsTokenByTokenDecode() {
        int[] tokens = tokenizer.encode("The quick brown fox jumps over");
        float[] batched = model.forward(model.newKvCache(16), tokens);
        KvCache cache = model.newKvCache(16);
        float[] stepwise = null;
        for (int t : tokens) stepwise = model.forward(cache, new int[] {t});
        assertEquals(tokens.length, cache.length());
        float maxDiff = 0;
        for (int i = 0; i < batched.length; i++) maxDiff = Math.max(maxDiff, Math.abs(batched[i] - stepwise[i]));
        assertTrue(maxDiff < 1e-3f, "max logit difference " + maxDiff);
        int next = Sampler.argmax(batched);
        assertTrue(next == tokenizer.id("Ġthe") || next == tokenizer.id("Ġa"), "\"...jumps over\" continues with " + tokenizer.token(next));
    }

    @Test
    void hooksSeeLinearInputsAndLayersCanBeReplaced() {
        List<String> seen = new ArrayList<>();
        float[][] downInput = new float[1][];
        LinearInputHook hook = (layer, x, tokens, in) -> {
            seen.add(layer + ":" + tokens + "x" + in);
            if (layer.equals("blk.2.ffn_down")) downInput[0] = java.util.Arrays.copyOf(x, tokens * in);
        };
        int[] tokens = tokenizer.encode("Hello world");
        model.addInputHook(hook);
        float[] reference;
        try {
            reference = model.forward(model.newKvCache(8), tokens);
        } finally {
            model.removeInputHook(hook);
        }
        assertEquals(30 * 7 + 1, seen.size());
        assertEquals("blk.0.attn_q:2x576", seen.get(0));
        assertEquals("blk.0.ffn_down:2x1536", seen.get(6));
        assertEquals("output:1x576", seen.get(seen.size() - 1));
        assertEquals(2 * 1536, downInput[0].length);

        // swap blk.2.ffn_down for an op that delegates but records; the output must not change
        LinearOp original = model.linear("blk.2.ffn_down");
        int[] calls = {0};
        model.replaceLinear("blk.2.ffn_down", new LinearOp() {
            public int inFeatures() { return original.inFeatures(); }
            public int outFeatures() { return original.outFeatures(); }
            public void forward(float[] x, int n, float[] y) {
                calls[0]++;
                original.forward(x, n, y);
            }
        });
        try {
            assertArrayEquals(reference, model.forward(model.newKvCache(8), tokens), 0f);
            assertEquals(1, calls[0]);
            // a zeroed ffn_down in one block changes the logits
            model.replaceLinear("blk.2.ffn_down", new FloatLinear(new float[576 * 1536], null, 576, 1536));
            float[] changed = model.forward(model.newKvCache(8), tokens);
            assertNotEquals(reference[Sampler.argmax(reference)], changed[Sampler.argmax(reference)]);
        } finally {
            model.replaceLinear("blk.2.ffn_down", original);
        }
        assertThrows(IllegalArgumentException.class,
                () -> model.replaceLinear("blk.2.ffn_down", new FloatLinear(new float[4], null, 2, 2)));
    }
}
