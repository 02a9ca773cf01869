package lowbit.eval;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import lowbit.io.HfCheckpoint;
import lowbit.io.SafetensorsDType;
import lowbit.model.DecoderModel;
import lowbit.model.OptModel;
import lowbit.model.OptModelTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** DumpLogits on a checkpoint directory: the file's layout and its logits equal the model's own. */
class DumpLogitsTest {
    @TempDir
    Path tmp;

    @Test
    void dumpsOptCheckpointDirectoryPreAndPostNorm() throws IOException {
        for (boolean preNorm : new boolean[] {true, false}) {
            Path dir = OptModelTest.writeTinyOpt(tmp.resolve("opt" + preNorm), 31, "model.decoder.", preNorm, SafetensorsDType.F32);
            int[] ids = {3, 17, 0, 42, 9};
            Path out = tmp.resolve("logits" + preNorm + ".bin");
            System.setProperty("lowbit.model", dir.toString());
            try {
                DumpLogits.main(new String[] {out.toString(), "3,17,0", "42", "9"});
            } finally {
                System.clearProperty("lowbit.model");
            }
            ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(out)).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(ids.length, b.getInt());
            assertEquals(OptModelTest.VOCAB, b.getInt());
            for (int id : ids) assertEquals(id, b.getInt());
            float[] expected;
            try (HfCheckpoint hf = HfCheckpoint.open(dir)) {
                OptModel m = OptModel.load(hf);
                expected = m.logits(m.forwardHidden(m.newKvCache(ids.length), ids), ids.length);
            }
            assertEquals(expected.length * 4, b.remaining());
            for (float e : expected) assertEquals(e, b.getFloat(), 0f);
        }
    }

    @Test
    void loadPicksOptForOptCheckpoint() throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("opt"), 32, "decoder.", true, SafetensorsDType.F16);
        DecoderModel m = DumpLogits.load(dir);
        assertEquals("opt", m.architecture());
    }

    @Test
    void rejectsIdsOutsideVocabularyAndContext() throws IOException {
        Path dir = OptModelTest.writeTinyOpt(tmp.resolve("opt"), 33, "model.decoder.", true, SafetensorsDType.F32);
        DecoderModel m = DumpLogits.load(dir);
        Path out = tmp.resolve("x.bin");
        assertThrows(IllegalArgumentException.class, () -> DumpLogits.dump(m, new int[] {OptModelTest.VOCAB}, out));
        assertThrows(IllegalArgumentException.class, () -> DumpLogits.dump(m, new int[] {-1}, out));
        assertThrows(IllegalArgumentException.class, () -> DumpLogits.dump(m, new int[OptModelTest.MAX_POS + 1], out));
        assertThrows(IllegalArgumentException.class, () -> DumpLogits.parseIds(new String[] {" , "}));
        assertFalse(Files.exists(out));
    }
}
