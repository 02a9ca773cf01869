package lowbit.eval;

import java.io.PrintStream;
import lowbit.model.KvCache;
import lowbit.model.DecoderModel;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Perplexity with the seeds' protocol: the token stream is cut into non-overlapping windows of
 * {@code min(2048, context length)} tokens (a trailing partial window is dropped), each window is
 * run from an empty KV cache, and every token after the first of a window is scored from the ones
 * before it; perplexity is {@code exp} of the mean negative log-likelihood over all scored tokens.
 * No BOS is inserted: windows are plain slices of the text's tokens (Hugging Face's SmolLM2
 * tokenizer adds no BOS either), so each window scores {@code window − 1} tokens.
 */
public final class Perplexity {
    /** The protocol's window length, used unless the model's context is shorter. */
    public static final int DEFAULT_WINDOW = 2048;
    private static final int LOGIT_ROWS = 64;

    /** Result: perplexity, scored tokens, windows, tokens per second of the model runs. */
    public record Result(double perplexity, double meanNll, long scoredTokens, int windows, int windowLength, double tokensPerSecond) {
        @Override
        public String toString() {
            return String.format("perplexity %.4f (mean NLL %.5f) over %d scored tokens in %d windows of %d, %.1f tokens/s",
                    perplexity, meanNll, scoredTokens, windows, windowLength, tokensPerSecond);
        }
    }

    private Perplexity() {}

    /** The protocol's window length for {@code model}: {@code min(2048, context length)}. */
    public static int windowFor(DecoderModel model) {
        return Math.min(DEFAULT_WINDOW, model.shape().contextLength());
    }

    /**
     * Evaluates {@code tokens} in windows of {@code window} tokens ({@link #windowFor} for the
     * protocol; a smaller one for quick checks). Progress and tokens/s go to {@code progress} (null
     * for silence).
     */
    public static Result evaluate(DecoderModel model, int[] tokens, int window, PrintStream progress) {
        if (window < 2 || window > model.shape().contextLength()) throw new IllegalArgumentException("window " + window);
        int windows = tokens.length / window;
        if (windows == 0) throw new IllegalArgumentException(tokens.length + " tokens are fewer than one window of " + window);
        int vocab = model.shape().vocabSize();
        int dim = model.shape().dim();
        double nllSum = 0;
        long scored = 0;
        long start = System.nanoTime();
        KvCache cache = model.newKvCache(window);
        ProgressBar bar = progress == null ? null : new ProgressBarBuilder().setTaskName("perplexity").setInitialMax((long) windows * window)
                .setUnit(" tok", 1).showSpeed().setStyle(ProgressBarStyle.ASCII).setConsumer(new ConsoleProgressBarConsumer(progress, 100)).build();
        try {
            for (int w = 0; w < windows; w++) {
                int[] slice = java.util.Arrays.copyOfRange(tokens, w * window, (w + 1) * window);
                cache.reset();
                float[] hidden = model.forwardHidden(cache, slice);
                for (int r0 = 0; r0 < window - 1; r0 += LOGIT_ROWS) {
                    int rows = Math.min(LOGIT_ROWS, window - 1 - r0);
                    float[] logits = model.logits(java.util.Arrays.copyOfRange(hidden, r0 * dim, (r0 + rows) * dim), rows);
                    for (int r = 0; r < rows; r++) nllSum += negativeLogLikelihood(logits, r * vocab, vocab, slice[r0 + r + 1]);
                }
                scored += window - 1;
                if (bar != null) bar.stepBy(window);
            }
        } finally {
            if (bar != null) bar.close();
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        double meanNll = nllSum / scored;
        Result result = new Result(Math.exp(meanNll), meanNll, scored, windows, window, (double) windows * window / seconds);
        if (progress != null) progress.println(result);
        return result;
    }

    /** {@code -log softmax(logits)[target]} for the row at {@code offset}, in double precision. */
    static double negativeLogLikelihood(float[] logits, int offset, int vocab, int target) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) max = Math.max(max, logits[offset + i]);
        double sum = 0;
        for (int i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i] - max);
        return Math.log(sum) - (logits[offset + target] - max);
    }
}
