package lowbit.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Saves and loads {@link CalibrationStats} so a calibration run can be reused.
 *
 * <p>Format (JSON): {@code {"format": "lowbit-calibration", "version": 1, "layers": [...]}}; each
 * layer holds its name, channel count, {@link CalibrationStats.Options}, the per-tensor sketch, one
 * sketch per channel and the token sample. A sketch is {@code {"total", "max", "bins": [i],
 * "counts": [c]}} listing only non-empty bins; maxima are written as doubles (exact for floats);
 * the sample rows are base64 of little-endian float32. Files with another format name or version
 * are rejected with {@link UnsupportedFormatVersionException}. After loading, the sampler continues
 * with a fresh seed derived from the saved seed and token count.
 */
public final class CalibrationFile {
    static final String FORMAT = "lowbit-calibration";
    static final int VERSION = 1;
    private static final ObjectMapper JSON = new ObjectMapper();

    private CalibrationFile() {}

    public static void write(Path file, Collection<CalibrationStats> layers) {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        ArrayNode list = root.putArray("layers");
        for (CalibrationStats s : layers) {
            ObjectNode l = list.addObject();
            l.put("layer", s.layer);
            l.put("channels", s.channels());
            CalibrationStats.Options o = s.options;
            ObjectNode on = l.putObject("options");
            on.put("channelBinsPerOctave", o.channelBinsPerOctave());
            on.put("tensorBinsPerOctave", o.tensorBinsPerOctave());
            on.put("minExponent", o.minExponent());
            on.put("maxExponent", o.maxExponent());
            on.put("sampleTokens", o.sampleTokens());
            on.put("seed", o.seed());
            l.set("tensorSketch", sketchJson(s.tensorSketch));
            ArrayNode ch = l.putArray("channelSketches");
            for (LogHistogram h : s.channelSketches) {
                ch.add(sketchJson(h));
            }
            ObjectNode sample = l.putObject("sample");
            sample.put("size", s.sample.size);
            sample.put("seen", s.sample.seen);
            ByteBuffer bytes = ByteBuffer.allocate(4 * s.sample.size * s.channels()).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < s.sample.size * s.channels(); i++) {
                bytes.putFloat(s.sample.rows[i]);
            }
            sample.put("rows", bytes.array());
        }
        try {
            JSON.writeValue(file.toFile(), root);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write calibration file " + file + ": " + e.getMessage(), e);
        }
    }

    /** Layers by name, in file order. */
    public static Map<String, CalibrationStats> read(Path file) {
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read calibration file " + file + ": " + e.getMessage(), e);
        }
        String format = root.path("format").asText("");
        int version = root.path("version").asInt(-1);
        if (!FORMAT.equals(format) || version != VERSION) {
            throw new UnsupportedFormatVersionException("calibration file " + file + " has format '" + format + "' version "
                    + version + "; this build reads '" + FORMAT + "' version " + VERSION);
        }
        Map<String, CalibrationStats> out = new LinkedHashMap<>();
        for (JsonNode l : root.path("layers")) {
            JsonNode on = l.path("options");
            CalibrationStats.Options o = new CalibrationStats.Options(on.path("channelBinsPerOctave").asInt(),
                    on.path("tensorBinsPerOctave").asInt(), on.path("minExponent").asInt(), on.path("maxExponent").asInt(),
                    on.path("sampleTokens").asInt(), on.path("seed").asLong());
            String name = l.path("layer").asText();
            int k = l.path("channels").asInt();
            JsonNode sample = l.path("sample");
            long seen = sample.path("seen").asLong();
            CalibrationStats s = new CalibrationStats(name, k, o, o.seed() ^ (seen * 0x9E3779B97F4A7C15L));
            readSketch(l.path("tensorSketch"), s.tensorSketch, name);
            JsonNode ch = l.path("channelSketches");
            if (ch.size() != k) {
                throw new ShapeMismatchException("calibration file " + file + ", layer '" + name + "': " + ch.size()
                        + " channel sketches for " + k + " channels");
            }
            for (int j = 0; j < k; j++) {
                readSketch(ch.get(j), s.channelSketches[j], name);
            }
            int size = sample.path("size").asInt();
            byte[] rows;
            try {
                rows = sample.path("rows").binaryValue();
            } catch (IOException e) {
                throw new IllegalArgumentException("calibration file " + file + ", layer '" + name + "': bad sample rows", e);
            }
            if (size > o.sampleTokens() || rows == null || rows.length != 4 * size * k) {
                throw new ShapeMismatchException("calibration file " + file + ", layer '" + name + "': sample of " + size
                        + " tokens does not match its data");
            }
            ByteBuffer bytes = ByteBuffer.wrap(rows).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < size * k; i++) {
                s.sample.rows[i] = bytes.getFloat();
            }
            s.sample.size = size;
            s.sample.seen = seen;
            out.put(name, s);
        }
        return out;
    }

    private static ObjectNode sketchJson(LogHistogram h) {
        ObjectNode n = JSON.createObjectNode();
        n.put("total", h.total);
        n.put("max", (double) h.max);
        ArrayNode bins = n.putArray("bins");
        ArrayNode counts = n.putArray("counts");
        for (int i = 0; i < h.counts.length; i++) {
            if (h.counts[i] != 0) {
                bins.add(i);
                counts.add(h.counts[i]);
            }
        }
        return n;
    }

    private static void readSketch(JsonNode n, LogHistogram h, String layer) {
        JsonNode bins = n.path("bins");
        JsonNode counts = n.path("counts");
        if (bins.size() != counts.size()) {
            throw new ShapeMismatchException("calibration layer '" + layer + "': sketch has " + bins.size() + " bins but "
                    + counts.size() + " counts");
        }
        long total = 0;
        for (int i = 0; i < bins.size(); i++) {
            int b = bins.get(i).asInt();
            if (b < 0 || b >= h.counts.length) {
                throw new ShapeMismatchException("calibration layer '" + layer + "': sketch bin " + b + " out of range");
            }
            h.counts[b] = counts.get(i).asInt();
            total += h.counts[b];
        }
        h.total = n.path("total").asLong();
        if (total != h.total) {
            throw new IllegalArgumentException("calibration layer '" + layer + "': sketch counts sum to " + total
                    + " but total says " + h.total);
        }
        h.max = (float) n.path("max").asDouble();
    }
}
