package lowbit.pipeline;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import lowbit.io.SafetensorsDType;
import lowbit.model.DecoderModel;
import lowbit.model.OptModel;
import lowbit.model.OptModelTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A Hugging Face checkpoint directory as the workspace's model: the graph by model_type, the tokenizer from tokenizer.json. */
class WorkspaceCheckpointTest {
    @Test
    void opensAnOptCheckpointDirectory(@TempDir Path tmp) throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("opt"), 8, "model.decoder.", true, SafetensorsDType.F16);
        Files.writeString(dir.resolve("tokenizer.json"), "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\","
                + " \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}}");
        Workspace ws = Workspace.open(dir);
        assertTrue(ws.isCheckpoint());
        assertArrayEquals(new int[] {2, 0}, ws.tokenizer().encode("aba"));
        DecoderModel m = ws.loadModel();
        assertInstanceOf(OptModel.class, m);
        assertEquals("opt", m.architecture());
        assertEquals(OptModelTest.VOCAB, m.shape().vocabSize());
        Files.delete(dir.resolve("tokenizer.json"));
        assertTrue(assertThrows(IOException.class, () -> Workspace.open(dir)).getMessage().contains("tokenizer.json"));
    }
}
