package lowbit.calibrate;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The state of a run in its directory: {@code manifest.json} (the run's fingerprint, how many
 * blocks are done, their reports), {@code block-N.json} (block N's learned parameters) and the
 * activation files that feed the next block ({@code input-fp-N.f32}, {@code input-q-N.f32}). A
 * block is committed by writing its files under temporary names, renaming them into place, and
 * then atomically replacing the manifest; a run killed at any point resumes at the first block the
 * manifest does not list, and files of an uncommitted block are rewritten.
 */
final class Checkpoint {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final Path dir;
    private final String fingerprint;
    private int completed;
    private final List<BlockReport> reports = new ArrayList<>();

    private Checkpoint(Path dir, String fingerprint) {
        this.dir = dir;
        this.fingerprint = fingerprint;
    }

    /** The run in {@code dir}: a fresh one if there is no manifest, else the recorded state (same fingerprint required). */
    static Checkpoint open(Path dir, String fingerprint) throws IOException {
        Files.createDirectories(dir);
        Checkpoint c = new Checkpoint(dir, fingerprint);
        Path manifest = dir.resolve("manifest.json");
        if (Files.exists(manifest)) {
            Manifest m = JSON.readValue(manifest.toFile(), Manifest.class);
            if (!m.fingerprint.equals(fingerprint)) {
                throw new IllegalStateException(dir + " holds a run with other settings (" + m.fingerprint + "), not (" + fingerprint
                        + "); use a fresh directory");
            }
            c.completed = m.completed;
            c.reports.addAll(m.reports);
        }
        return c;
    }

    int completed() {
        return completed;
    }

    List<BlockReport> reports() {
        return List.copyOf(reports);
    }

    Path input(boolean quantized, int block) {
        return dir.resolve((quantized ? "input-q-" : "input-fp-") + block + ".f32");
    }

    static Path temporary(Path p) {
        return p.resolveSibling(p.getFileName() + ".tmp");
    }

    /**
     * Commits block {@code block}: its parameters, its report, and the finished temporary files of
     * {@code nextInputs} (final paths) renamed into place; then the inputs of {@code block} are deleted.
     */
    void commit(int block, Map<String, double[]> params, BlockReport report, List<Path> nextInputs) throws IOException {
        if (block != completed) throw new IllegalStateException("committing block " + block + " after " + completed + " done");
        Path paramFile = dir.resolve("block-" + block + ".json");
        writeAtomically(paramFile, JSON.writeValueAsBytes(params));
        for (Path p : nextInputs) Files.move(temporary(p), p, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        List<BlockReport> next = new ArrayList<>(reports);
        next.add(report);
        Manifest m = new Manifest();
        m.fingerprint = fingerprint;
        m.completed = block + 1;
        m.reports = next;
        writeAtomically(dir.resolve("manifest.json"), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(m));
        completed = block + 1;
        reports.add(report);
        Files.deleteIfExists(input(false, block));
        Files.deleteIfExists(input(true, block));
    }

    /** Learned parameters of every committed block. */
    Map<String, double[]> params() throws IOException {
        Map<String, double[]> all = new LinkedHashMap<>();
        for (int b = 0; b < completed; b++) {
            all.putAll(JSON.readValue(dir.resolve("block-" + b + ".json").toFile(), new TypeReference<LinkedHashMap<String, double[]>>() {}));
        }
        return all;
    }

    private static void writeAtomically(Path target, byte[] bytes) throws IOException {
        Path tmp = temporary(target);
        Files.write(tmp, bytes);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** The manifest as stored (Jackson bean). */
    static final class Manifest {
        public String fingerprint;
        public int completed;
        public List<BlockReport> reports = new ArrayList<>();
    }
}
