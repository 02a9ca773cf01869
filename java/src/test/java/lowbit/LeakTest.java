package lowbit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** Allocating and closing in a loop leaves native memory flat. */
class LeakTest {
    /** Resident set size of this process in KiB, from /proc (Linux). */
    static long rssKiB() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void allocateAndCloseStaysFlat() throws IOException {
        int mib = 8;
        try (Context ctx = Context.open(Backend.CPU)) {
            cycle(ctx, 20, mib); // warm up allocator and JIT
            long before = rssKiB();
            cycle(ctx, 300, mib); // 300 x 8 MiB = 2.4 GiB if anything leaked
            long grown = rssKiB() - before;
            assertTrue(grown < 200 * 1024, "RSS grew by " + grown / 1024 + " MiB over 300 cycles of " + mib + " MiB");
        }
    }

    private static void cycle(Context ctx, int times, int mib) {
        int cols = mib * 1024 * 1024 / 4 / 64;
        float[] row = new float[64 * cols];
        for (int i = 0; i < times; i++) {
            try (Tensor t = ctx.allocate(DType.F32, 64, cols).copyFrom(row);
                    QuantizedTensor q = ctx.quantize(t, 8, Granularity.PER_ROW)) {
                q.scales().toFloatArray();
            }
            Context c = Context.open(Backend.CPU);
            c.close();
        }
    }
}
