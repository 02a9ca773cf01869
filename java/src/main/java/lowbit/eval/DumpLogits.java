package lowbit.eval;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import lowbit.io.GgufFile;
import lowbit.io.HfCheckpoint;
import lowbit.io.ModelCache;
import lowbit.model.DecoderModel;
import lowbit.model.LlamaModel;
import lowbit.model.OptModel;

/**
 * Writes the FP32 Java model's logits for given token ids, for comparison with an independent
 * implementation ({@code bench/compare_logits.py} for GGUF, {@code bench/compare_opt.py} for
 * OPT checkpoints). Usage: {@code DumpLogits out.bin ids...} (ids comma- or space-separated). The
 * model is {@code -Dlowbit.model=PATH}: a {@code llama} GGUF file or a Hugging Face checkpoint
 * directory ({@code config.json} of model_type llama, mistral or opt, safetensors; no tokenizer
 * needed); else {@code -Dlowbit.gguf=PATH} (older spelling); else the embedded default model. The file
 * holds, little-endian: int32 token count T, int32 vocabulary size V, T int32 ids, then T×V float32
 * logits (row t predicts token t+1).
 */
public final class DumpLogits {
    private DumpLogits() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 2) throw new IllegalArgumentException("usage: DumpLogits out.bin id [id ...]");
        int[] ids = parseIds(Arrays.copyOfRange(args, 1, args.length));
        String path = System.getProperty("lowbit.model", System.getProperty("lowbit.gguf"));
        DecoderModel model = load(path != null ? Path.of(path) : ModelCache.defaultCache().smolLm2Gguf());
        int vocab = dump(model, ids, Path.of(args[0]));
        System.out.println("wrote " + ids.length + " × " + vocab + " logits of " + model.architecture() + " to " + args[0]);
    }

    static int[] parseIds(String[] args) {
        String joined = String.join(" ", args).replace(',', ' ').trim();
        if (joined.isEmpty()) throw new IllegalArgumentException("no token ids given");
        return Arrays.stream(joined.split("\\s+")).mapToInt(Integer::parseInt).toArray();
    }

    /** The FP32 model at {@code path}: a checkpoint directory (llama, mistral or opt) or a llama GGUF file. */
    public static DecoderModel load(Path path) throws IOException {
        if (Files.isDirectory(path)) {
            try (HfCheckpoint hf = HfCheckpoint.open(path)) {
                return "opt".equals(hf.stringValue("model_type", null)) ? OptModel.load(hf) : LlamaModel.load(hf);
            }
        }
        try (GgufFile g = GgufFile.open(path)) {
            return LlamaModel.load(g);
        }
    }

    /** Runs {@code ids} as one prefill and writes the dump to {@code out}; returns the vocabulary size. */
    public static int dump(DecoderModel model, int[] ids, Path out) throws IOException {
        DecoderModel.Shape shape = model.shape();
        if (ids.length < 1 || ids.length > shape.contextLength()) {
            throw new IllegalArgumentException(ids.length + " tokens, the model takes 1.." + shape.contextLength());
        }
        for (int id : ids) {
            if (id < 0 || id >= shape.vocabSize()) throw new IllegalArgumentException("token id " + id + " outside vocabulary 0.." + (shape.vocabSize() - 1));
        }
        float[] hidden = model.forwardHidden(model.newKvCache(ids.length), ids);
        float[] logits = model.logits(hidden, ids.length);
        int vocab = shape.vocabSize();
        ByteBuffer b = ByteBuffer.allocate(8 + 4 * ids.length + 4 * logits.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(ids.length).putInt(vocab);
        for (int id : ids) b.putInt(id);
        for (float f : logits) b.putFloat(f);
        Files.write(out, b.array());
        return vocab;
    }
}
