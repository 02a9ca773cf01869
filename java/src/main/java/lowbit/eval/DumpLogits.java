package lowbit.eval;

import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import lowbit.io.GgufFile;
import lowbit.io.ModelCache;
import lowbit.model.LlamaModel;

/**
 * Writes the FP32 Java model's logits for given token ids, for comparison with an independent
 * implementation. Usage: {@code DumpLogits out.bin ids...} (ids comma- or space-separated; the
 * default model unless {@code -Dlowbit.gguf=path}). The file holds, little-endian: int32 token
 * count T, int32 vocabulary size V, T int32 ids, then T×V float32 logits (row t predicts token t+1).
 */
public final class DumpLogits {
    private DumpLogits() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 2) throw new IllegalArgumentException("usage: DumpLogits out.bin id [id ...]");
        String joined = String.join(" ", java.util.Arrays.copyOfRange(args, 1, args.length)).replace(',', ' ').trim();
        int[] ids = java.util.Arrays.stream(joined.split("\\s+")).mapToInt(Integer::parseInt).toArray();
        String path = System.getProperty("lowbit.gguf");
        try (GgufFile file = GgufFile.open(path != null ? Path.of(path) : ModelCache.defaultCache().smolLm2Gguf())) {
            LlamaModel model = LlamaModel.load(file);
            float[] hidden = model.forwardHidden(model.newKvCache(ids.length), ids);
            float[] logits = model.logits(hidden, ids.length);
            int vocab = model.config().vocabSize();
            ByteBuffer b = ByteBuffer.allocate(8 + 4 * ids.length + 4 * logits.length).order(ByteOrder.LITTLE_ENDIAN);
            b.putInt(ids.length).putInt(vocab);
            for (int id : ids) b.putInt(id);
            for (float f : logits) b.putFloat(f);
            Files.write(Path.of(args[0]), b.array());
            System.out.println("wrote " + ids.length + " × " + vocab + " logits to " + args[0]);
        }
    }
}
