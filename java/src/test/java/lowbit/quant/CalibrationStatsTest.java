package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CalibrationStatsTest {
    @TempDir
    Path dir;

    private static float[] heavyTailed(SplittableRandom r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * Math.exp(2 * r.nextGaussian()));
        }
        return x;
    }

    @Test
    void quantilesWithinDocumentedRelativeError() {
        SplittableRandom r = new SplittableRandom(1);
        int k = 3;
        int tokens = 5001;
        float[] x = heavyTailed(r, tokens * k);
        x[7] = 0f;
        CalibrationStats s = CalibrationStats.create("q", k);
        s.observe(x, tokens);
        double[] all = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            all[i] = Math.abs(x[i]);
        }
        Arrays.sort(all);
        double tensorBound = 1.0 / (2 * s.options().tensorBinsPerOctave());
        double channelBound = 1.0 / (2 * s.options().channelBinsPerOctave());
        for (double q : new double[] {0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0}) {
            double exact = all[(int) Math.max(0, Math.ceil(q * all.length) - 1)];
            assertEquals(exact, s.tensorQuantile(q), tensorBound * exact, "tensor quantile " + q);
            double[] ch = new double[tokens];
            for (int t = 0; t < tokens; t++) {
                ch[t] = Math.abs(x[t * k + 1]);
            }
            Arrays.sort(ch);
            double exactCh = ch[(int) Math.max(0, Math.ceil(q * tokens) - 1)];
            assertEquals(exactCh, s.channelQuantile(1, q), channelBound * exactCh, "channel quantile " + q);
        }
        assertEquals((float) all[all.length - 1], s.tensorAbsMax());
        assertEquals(tokens, s.tokens());
    }

    @Test
    void memoryDoesNotGrowWithTokensAndMergeIsExact() {
        SplittableRandom r = new SplittableRandom(2);
        int k = 11;
        CalibrationStats.Options o = CalibrationStats.Options.defaults().withSampleTokens(16);
        CalibrationStats whole = CalibrationStats.create("l", k, o);
        CalibrationStats a = CalibrationStats.create("l", k, o);
        CalibrationStats b = CalibrationStats.create("l", k, o);
        int countsBefore = whole.tensorSketch.counts.length;
        for (int batch = 0; batch < 40; batch++) {
            float[] x = heavyTailed(r, 25 * k);
            whole.observe(x, 25);
            (batch % 3 == 0 ? a : b).observe(x, 25);
        }
        assertEquals(countsBefore, whole.tensorSketch.counts.length);
        assertEquals(16, whole.sampleSize());
        assertEquals(16 * k, whole.sample.rows.length);
        a.merge(b);
        assertEquals(whole.tokens(), a.tokens());
        assertArrayEquals(whole.channelAbsMax(), a.channelAbsMax());
        assertEquals(whole.tensorSketch, a.tensorSketch);
        for (int j = 0; j < k; j++) {
            assertEquals(whole.channelSketches[j], a.channelSketches[j]);
        }
        assertEquals(16, a.sampleSize());
        // the merged sample holds rows that really occurred
        float[] sample = a.sample();
        float[] wholeMax = whole.channelAbsMax();
        for (int i = 0; i < sample.length; i++) {
            assertTrue(Math.abs(sample[i]) <= wholeMax[i % k]);
        }
    }

    @Test
    void serializationRoundTrip() {
        SplittableRandom r = new SplittableRandom(3);
        CalibrationStats s1 = CalibrationStats.create("layers.0.q_proj", 7);
        CalibrationStats s2 = CalibrationStats.create("layers.0.down_proj", 5,
                new CalibrationStats.Options(8, 64, -20, 20, 4, 99));
        s1.observe(heavyTailed(r, 300 * 7), 300);
        s2.observe(heavyTailed(r, 9 * 5), 9);
        Path file = dir.resolve("calib.json");
        CalibrationFile.write(file, List.of(s1, s2));
        Map<String, CalibrationStats> back = CalibrationFile.read(file);
        assertEquals(List.of("layers.0.q_proj", "layers.0.down_proj"), List.copyOf(back.keySet()));
        for (CalibrationStats s : List.of(s1, s2)) {
            CalibrationStats b = back.get(s.layer());
            assertEquals(s.options(), b.options());
            assertEquals(s.tokens(), b.tokens());
            assertEquals(s.tensorSketch, b.tensorSketch);
            for (int j = 0; j < s.channels(); j++) {
                assertEquals(s.channelSketches[j], b.channelSketches[j]);
            }
            assertArrayEquals(s.channelAbsMax(), b.channelAbsMax());
            assertArrayEquals(s.sample(), b.sample());
            assertEquals(s.tensorQuantile(0.99), b.tensorQuantile(0.99));
        }
        // a loaded calibration keeps accumulating and merges with fresh stats
        CalibrationStats fresh = CalibrationStats.create("layers.0.q_proj", 7);
        fresh.observe(heavyTailed(r, 10 * 7), 10);
        back.get("layers.0.q_proj").merge(fresh);
        assertEquals(310, back.get("layers.0.q_proj").tokens());
    }

    @Test
    void otherVersionsAreRejected() throws IOException {
        CalibrationStats s = CalibrationStats.create("l", 2);
        s.observe(new float[] {1, 2}, 1);
        Path file = dir.resolve("v.json");
        CalibrationFile.write(file, List.of(s));
        String text = Files.readString(file);
        assertTrue(text.contains("\"version\":1"));
        Files.writeString(file, text.replace("\"version\":1", "\"version\":2"));
        UnsupportedFormatVersionException e = assertThrows(UnsupportedFormatVersionException.class,
                () -> CalibrationFile.read(file));
        assertTrue(e.getMessage().contains("version 2") && e.getMessage().contains("version 1"), e.getMessage());
        Files.writeString(file, text.replace("lowbit-calibration", "something-else"));
        assertThrows(UnsupportedFormatVersionException.class, () -> CalibrationFile.read(file));
        String plan = FlattenPlan.identity(3).toJson().replace("\"version\":2", "\"version\":7");
        UnsupportedFormatVersionException pe = assertThrows(UnsupportedFormatVersionException.class,
                () -> FlattenPlan.fromJson(plan));
        assertTrue(pe.getMessage().contains("version 7"), pe.getMessage());
    }
}
