package lowbit.pipeline;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import lowbit.eval.ShakespeareCorpus;
import lowbit.io.GgufFile;
import lowbit.io.HfCheckpoint;
import lowbit.io.ModelCache;
import lowbit.model.DecoderModel;
import lowbit.model.LlamaModel;
import lowbit.model.OptModel;
import lowbit.tokenizer.BpeTokenizer;

/**
 * A base model with its tokenizer, and the Shakespeare text split into calibration and evaluation
 * tokens. The model is a {@code llama} GGUF file (default: the embedded SmolLM2-135M from {@link
 * ModelCache}, tokenizer embedded) or a Hugging Face checkpoint directory ({@code config.json} of
 * model_type llama, mistral or opt, safetensors, and a byte-level BPE {@code tokenizer.json}). No
 * BOS is added to either text (the perplexity protocol's choice, the same for every method).
 */
public final class Workspace {
    private final Path gguf;
    private final boolean checkpoint;
    private final BpeTokenizer tokenizer;
    private final ModelCache cache;

    private Workspace(Path gguf, boolean checkpoint, BpeTokenizer tokenizer, ModelCache cache) {
        this.gguf = gguf;
        this.checkpoint = checkpoint;
        this.tokenizer = tokenizer;
        this.cache = cache;
    }

    /** {@code model}: a GGUF file or a Hugging Face checkpoint directory; null: the default model, fetched into the cache on first use. */
    public static Workspace open(Path model) throws IOException {
        ModelCache cache = ModelCache.defaultCache();
        Path file = model == null ? cache.smolLm2Gguf() : model;
        if (java.nio.file.Files.isDirectory(file)) {
            return new Workspace(file, true, BpeTokenizer.fromHfJson(file.resolve("tokenizer.json")), cache);
        }
        try (GgufFile g = GgufFile.open(file)) {
            return new Workspace(file, false, BpeTokenizer.fromGguf(g), cache);
        }
    }

    /** The model's path: the GGUF file or the checkpoint directory. */
    public Path gguf() {
        return gguf;
    }

    /** True for a Hugging Face checkpoint directory, false for a GGUF file. */
    public boolean isCheckpoint() {
        return checkpoint;
    }

    public BpeTokenizer tokenizer() {
        return tokenizer;
    }

    /** A freshly loaded FP32 model (every call loads anew, so quantizing one leaves others untouched). */
    public DecoderModel loadModel() throws IOException {
        if (checkpoint) {
            try (HfCheckpoint hf = HfCheckpoint.open(gguf)) {
                return "opt".equals(hf.stringValue("model_type", null)) ? OptModel.load(hf) : LlamaModel.load(hf);
            }
        }
        try (GgufFile g = GgufFile.open(gguf)) {
            return LlamaModel.load(g);
        }
    }

    /** The first {@code count} tokens of the calibration text (works never used for evaluation). */
    public int[] calibrationTokens(int count) throws IOException {
        if (count < 1) throw new IllegalArgumentException("calibration needs >= 1 token, got " + count);
        String text = ShakespeareCorpus.open(cache.shakespeareTexts()).calibrationText();
        // about 4 characters per token in this text; tokenize a prefix that surely suffices
        int chars = (int) Math.min(text.length(), 8L * count + 1024);
        int[] tokens = tokenizer.encode(text.substring(0, chars));
        if (tokens.length < count) tokens = tokenizer.encode(text);
        if (tokens.length < count) throw new IllegalArgumentException("the calibration text has only " + tokens.length + " tokens");
        return Arrays.copyOf(tokens, count);
    }

    /** The first {@code windows × window} tokens of the evaluation text. */
    public int[] evaluationTokens(int windows, int window) throws IOException {
        if (windows < 1 || window < 2) throw new IllegalArgumentException("need >= 1 window of >= 2 tokens");
        String text = ShakespeareCorpus.open(cache.shakespeareTexts()).evaluationText();
        long need = (long) windows * window;
        int chars = (int) Math.min(text.length(), 8L * need + 1024);
        int[] tokens = tokenizer.encode(text.substring(0, chars));
        if (tokens.length < need) tokens = tokenizer.encode(text);
        if (tokens.length < need) {
            throw new IllegalArgumentException("the evaluation text has " + tokens.length + " tokens, fewer than "
                    + windows + " windows of " + window);
        }
        return Arrays.copyOf(tokens, (int) need);
    }
}
