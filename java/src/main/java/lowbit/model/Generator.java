package lowbit.model;

import java.util.function.IntConsumer;
import java.util.function.IntPredicate;

/** Autoregressive generation: one prefill of the prompt, then single-token decode steps. */
public final class Generator {
    private final DecoderModel model;

    public Generator(DecoderModel model) {
        this.model = model;
    }

    /**
     * Generates up to {@code maxNewTokens} tokens after {@code prompt}, stopping early after a token
     * for which {@code isStop} holds (that token is included). Each new token is passed to {@code
     * onToken} (may be null) as soon as it is chosen. Returns the new tokens.
     */
    public int[] generate(int[] prompt, int maxNewTokens, Sampler sampler, IntPredicate isStop, IntConsumer onToken) {
        int capacity = Math.min(model.shape().contextLength(), prompt.length + maxNewTokens);
        KvCache cache = model.newKvCache(capacity);
        int[] generated = new int[Math.max(0, capacity - prompt.length)];
        int count = 0;
        float[] logits = model.forward(cache, prompt);
        while (count < generated.length) {
            int next = sampler.sample(logits);
            generated[count++] = next;
            if (onToken != null) onToken.accept(next);
            if (isStop.test(next) || count == generated.length) break;
            logits = model.forward(cache, new int[] {next});
        }
        return java.util.Arrays.copyOf(generated, count);
    }
}
