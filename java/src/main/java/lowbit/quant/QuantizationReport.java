package lowbit.quant;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The bit-width policy's decision: per layer its precision, flatten threshold, K and K', smoothing
 * alpha and relative output error, and the share of linear-layer compute ({@code 2 N K'} per token,
 * K' as executed) at each precision. Printable with {@link #toTable()}, savable as JSON.
 */
public final class QuantizationReport {
    /** One layer's decision; {@code alpha} NaN = no smoothing, {@code threshold} NaN for FP16. */
    public record Row(String layer, Precision precision, int inFeatures, int expandedFeatures, int outFeatures,
                      double threshold, double alpha, double relativeError, long flopsPerToken) {}

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private final String policy;
    private final List<Row> rows;
    private final Map<Precision, Double> shares = new EnumMap<>(Precision.class);

    /** A report of already-made decisions (e.g. a fixed-precision baseline) under a policy description. */
    public static QuantizationReport of(String policy, List<Row> rows) {
        if (rows.isEmpty()) {
            throw new IllegalArgumentException("a quantization report needs at least one layer");
        }
        return new QuantizationReport(policy, rows);
    }

    QuantizationReport(String policy, List<Row> rows) {
        this.policy = policy;
        this.rows = List.copyOf(rows);
        double total = 0;
        for (Row r : rows) {
            total += r.flopsPerToken();
        }
        for (Precision p : Precision.values()) {
            double sum = 0;
            for (Row r : rows) {
                if (r.precision() == p) {
                    sum += r.flopsPerToken();
                }
            }
            shares.put(p, total == 0 ? 0.0 : sum / total);
        }
    }

    public String policy() {
        return policy;
    }

    public List<Row> rows() {
        return rows;
    }

    /** Fraction of all linear-layer compute (FLOPs per token) that runs at {@code p}. */
    public double share(Precision p) {
        return shares.get(p);
    }

    public Precision precisionOf(String layer) {
        for (Row r : rows) {
            if (r.layer().equals(layer)) {
                return r.precision();
            }
        }
        throw new IllegalArgumentException("no layer named '" + layer + "' in the report");
    }

    public String toTable() {
        StringBuilder b = new StringBuilder();
        int w = 5;
        for (Row r : rows) {
            w = Math.max(w, r.layer().length());
        }
        String head = "%-" + w + "s  %-5s  %10s  %6s  %6s  %6s  %5s  %10s  %13s%n";
        String line = "%-" + w + "s  %-5s  %10s  %6d  %6d  %6.3f  %5s  %10.3e  %13d%n";
        b.append(String.format(Locale.ROOT, "policy: %s%n", policy));
        b.append(String.format(Locale.ROOT, head, "layer", "bits", "threshold", "K", "K'", "K'/K", "alpha", "rel.err", "FLOPs/token"));
        for (Row r : rows) {
            b.append(String.format(Locale.ROOT, line, r.layer(), r.precision(),
                    Double.isNaN(r.threshold()) ? "-" : String.format(Locale.ROOT, "%.4g", r.threshold()),
                    r.inFeatures(), r.expandedFeatures(), (double) r.expandedFeatures() / r.inFeatures(),
                    Double.isNaN(r.alpha()) ? "none" : String.format(Locale.ROOT, "%.2f", r.alpha()),
                    r.relativeError(), r.flopsPerToken()));
        }
        b.append(String.format(Locale.ROOT, "compute share: INT4 %.2f%%, INT8 %.2f%%, FP16 %.2f%%%n",
                100 * share(Precision.INT4), 100 * share(Precision.INT8), 100 * share(Precision.FP16)));
        return b.toString();
    }

    /** JSON: {@code {"policy", "layers": [...], "share": {"INT4", "INT8", "FP16"}}}; NaN fields are null. */
    public String toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("policy", policy);
        ArrayNode list = root.putArray("layers");
        for (Row r : rows) {
            ObjectNode n = list.addObject();
            n.put("layer", r.layer());
            n.put("precision", r.precision().name());
            n.put("bits", r.precision().bits());
            putNumber(n, "threshold", r.threshold());
            n.put("inFeatures", r.inFeatures());
            n.put("expandedFeatures", r.expandedFeatures());
            n.put("outFeatures", r.outFeatures());
            n.put("expansionRatio", (double) r.expandedFeatures() / r.inFeatures());
            putNumber(n, "alpha", r.alpha());
            putNumber(n, "relativeError", r.relativeError());
            n.put("flopsPerToken", r.flopsPerToken());
        }
        ObjectNode share = root.putObject("share");
        for (Precision p : Precision.values()) {
            share.put(p.name(), share(p));
        }
        try {
            return JSON.writeValueAsString(root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public void write(Path file) {
        try {
            java.nio.file.Files.writeString(file, toJson());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write quantization report " + file + ": " + e.getMessage(), e);
        }
    }

    private static void putNumber(ObjectNode n, String field, double v) {
        if (Double.isFinite(v)) {
            n.put(field, v);
        } else {
            n.putNull(field);
        }
    }
}
