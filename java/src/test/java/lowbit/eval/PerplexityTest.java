package lowbit.eval;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import lowbit.io.RealModelFixture;
import lowbit.model.LlamaModel;
import lowbit.tokenizer.BpeTokenizer;
import org.junit.jupiter.api.Test;

class PerplexityTest {
    @Test
    void negativeLogLikelihoodOfKnownDistributions() {
        assertEquals(Math.log(4), Perplexity.negativeLogLikelihood(new float[] {1, 1, 1, 1}, 0, 4, 2), 1e-9);
        float[] logits = {9, 0, (float) Math.log(3), 0};
        // second row: softmax over [ln 3, 0] gives 3/4 and 1/4
        assertEquals(-Math.log(0.75), Perplexity.negativeLogLikelihood(logits, 2, 2, 0), 1e-6);
        assertEquals(-Math.log(0.25), Perplexity.negativeLogLikelihood(logits, 2, 2, 1), 1e-6);
    }

    /**
     * 2 windows of 128 tokens from the start of the evaluation text. Measured: perplexity 40.1
     * (FP32 from the Q4_1 file); the bound leaves room for numeric differences, not for a broken
     * graph (a random model gives about the vocabulary size, 49152).
     */
    @Test
    void realModelPerplexityOnAShortEvaluationSlice() throws IOException {
        LlamaModel model = LlamaModel.load(RealModelFixture.gguf());
        BpeTokenizer tokenizer = BpeTokenizer.fromGguf(RealModelFixture.gguf());
        ShakespeareCorpus corpus = ShakespeareCorpus.open(RealModelFixture.shakespeare());
        int[] tokens = java.util.Arrays.copyOf(tokenizer.encode(corpus.evaluationText()), 256);
        Perplexity.Result r = Perplexity.evaluate(model, tokens, 128, System.out);
        assertEquals(2, r.windows());
        assertEquals(254, r.scoredTokens());
        assertTrue(r.perplexity() > 5 && r.perplexity() < 200, r.toString());
    }
}
