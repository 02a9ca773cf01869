package lowbit.io;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/**
 * The real model and text for integration tests, obtained once per JVM through {@link
 * ModelCache#defaultCache()}. When they cannot be obtained the calling test is skipped with a
 * message saying why (also printed to stderr so it shows in any runner).
 */
public final class RealModelFixture {
    private static GgufFile gguf;
    private static Path texts;
    private static String failure;

    private RealModelFixture() {}

    /** The SmolLM2-135M-Instruct GGUF, opened once and shared; skips the test if unavailable. */
    public static synchronized GgufFile gguf() {
        if (gguf == null && failure == null) {
            try {
                gguf = GgufFile.open(ModelCache.defaultCache().smolLm2Gguf());
            } catch (IOException | RuntimeException e) {
                failure = "real model unavailable, skipping: " + e;
            }
        }
        skipIfFailed();
        return gguf;
    }

    /** Directory of Shakespeare's texts; skips the test if unavailable. */
    public static synchronized Path shakespeare() {
        if (texts == null) {
            try {
                texts = ModelCache.defaultCache().shakespeareTexts();
            } catch (IOException | RuntimeException e) {
                String message = "Shakespeare texts unavailable, skipping: " + e;
                System.err.println(message);
                Assumptions.abort(message);
            }
        }
        return texts;
    }

    private static void skipIfFailed() {
        if (failure != null) {
            System.err.println(failure);
            Assumptions.abort(failure);
        }
    }
}
