package lowbit.eval;

import java.nio.file.Path;
import lowbit.io.GgufFile;
import lowbit.io.ModelCache;
import lowbit.model.LlamaModel;
import lowbit.tokenizer.BpeTokenizer;

/**
 * Command line: FP32 perplexity of the default model (or a given GGUF) on the Shakespeare
 * evaluation split. Arguments: {@code [maxTokens [window [gguf]]]}; {@code maxTokens} limits the
 * evaluation text to its first tokens (0 = all), {@code window} defaults to the protocol's.
 */
public final class PerplexityMain {
    private PerplexityMain() {}

    public static void main(String[] args) throws Exception {
        int maxTokens = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        ModelCache cache = ModelCache.defaultCache();
        Path gguf = args.length > 2 ? Path.of(args[2]) : cache.smolLm2Gguf();
        try (GgufFile file = GgufFile.open(gguf)) {
            LlamaModel model = LlamaModel.load(file);
            BpeTokenizer tokenizer = BpeTokenizer.fromGguf(file);
            int window = args.length > 1 ? Integer.parseInt(args[1]) : Perplexity.windowFor(model);
            ShakespeareCorpus corpus = ShakespeareCorpus.open(cache.shakespeareTexts());
            int[] tokens = tokenizer.encode(corpus.evaluationText());
            System.out.println("evaluation works " + corpus.evaluationWorks() + ": " + tokens.length + " tokens");
            if (maxTokens > 0 && maxTokens < tokens.length) tokens = java.util.Arrays.copyOf(tokens, maxTokens);
            Perplexity.evaluate(model, tokens, window, System.out);
        }
    }
}
