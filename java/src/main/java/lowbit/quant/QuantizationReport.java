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
    /** The method of rows made without one: a uniform grid with one weight scale per output channel. */
    public static final String UNIFORM = "uniform";

    /**
     * One layer's decision; {@code alpha} NaN = no smoothing, {@code threshold} NaN for FP16 and for
     * methods without a flatten threshold. {@code method} names the weight quantizer ({@link #UNIFORM}
     * for per-channel grids, e.g. {@code "FlattenQuant"}, {@code "RTN"}, {@code "DGQ"}); {@code group}
     * is its weight group size G (input columns per scale; when G does not divide K the last group is
     * partial), 0 for one scale per output channel.
     */
    public record Row(String layer, Precision precision, int inFeatures, int expandedFeatures, int outFeatures,
                      double threshold, double alpha, double relativeError, long flopsPerToken, String method, int group) {
        public Row {
            java.util.Objects.requireNonNull(layer, "layer");
            java.util.Objects.requireNonNull(precision, "precision");
            if (method == null || method.isBlank()) throw new IllegalArgumentException("row " + layer + ": method must be named");
            if (group < 0) throw new IllegalArgumentException("row " + layer + ": group size must be >= 0, got " + group);
        }

        /** A per-channel row ({@link #UNIFORM}, no groups), the form of reports before the method and group fields. */
        public Row(String layer, Precision precision, int inFeatures, int expandedFeatures, int outFeatures,
                   double threshold, double alpha, double relativeError, long flopsPerToken) {
            this(layer, precision, inFeatures, expandedFeatures, outFeatures, threshold, alpha, relativeError, flopsPerToken,
                    UNIFORM, 0);
        }

        /** This row with another method name and group size. */
        public Row withMethod(String m, int g) {
            return new Row(layer, precision, inFeatures, expandedFeatures, outFeatures, threshold, alpha, relativeError,
                    flopsPerToken, m, g);
        }
    }

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
        int mw = 6;
        for (Row r : rows) {
            mw = Math.max(mw, r.method().length());
        }
        String head = "%-" + w + "s  %-" + mw + "s  %4s  %-5s  %10s  %6s  %6s  %6s  %5s  %10s  %13s%n";
        String line = "%-" + w + "s  %-" + mw + "s  %4s  %-5s  %10s  %6d  %6d  %6.3f  %5s  %10.3e  %13d%n";
        b.append(String.format(Locale.ROOT, "policy: %s%n", policy));
        b.append(String.format(Locale.ROOT, head, "layer", "method", "G", "bits", "threshold", "K", "K'", "K'/K", "alpha", "rel.err",
                "FLOPs/token"));
        for (Row r : rows) {
            b.append(String.format(Locale.ROOT, line, r.layer(), r.method(), r.group() == 0 ? "-" : Integer.toString(r.group()),
                    r.precision(),
                    Double.isNaN(r.threshold()) ? "-" : String.format(Locale.ROOT, "%.4g", r.threshold()),
                    r.inFeatures(), r.expandedFeatures(), (double) r.expandedFeatures() / r.inFeatures(),
                    Double.isNaN(r.alpha()) ? "none" : String.format(Locale.ROOT, "%.2f", r.alpha()),
                    r.relativeError(), r.flopsPerToken()));
        }
        b.append(String.format(Locale.ROOT, "compute share: INT4 %.2f%%, INT8 %.2f%%, FP16 %.2f%%%n",
                100 * share(Precision.INT4), 100 * share(Precision.INT8), 100 * share(Precision.FP16)));
        return b.toString();
    }

    /**
     * JSON: {@code {"policy", "layers": [...], "share": {"INT4", "INT8", "FP16"}}}; NaN fields are null.
     * Each layer has {@code method} and {@code group} (null for per channel) since these fields were
     * added; {@link #fromJson} reads reports without them as {@link #UNIFORM}, per channel.
     */
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
            n.put("method", r.method());
            if (r.group() == 0) n.putNull("group");
            else n.put("group", r.group());
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

    /**
     * Reads {@link #toJson}'s form; layers without {@code method} / {@code group} (reports written
     * before those fields) read as {@link #UNIFORM} per channel. Malformed input throws {@link
     * IllegalArgumentException} naming the field.
     */
    public static QuantizationReport fromJson(String json) {
        com.fasterxml.jackson.databind.JsonNode r;
        try {
            r = JSON.readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException("quantization report is not valid JSON: " + e.getMessage(), e);
        }
        return fromJson(r);
    }

    /** {@link #fromJson(String)} on a parsed tree. */
    public static QuantizationReport fromJson(com.fasterxml.jackson.databind.JsonNode r) {
        if (r == null || !r.path("layers").isArray()) throw new IllegalArgumentException("quantization report has no 'layers' array");
        java.util.List<Row> rows = new java.util.ArrayList<>();
        for (com.fasterxml.jackson.databind.JsonNode n : r.path("layers")) {
            String layer = n.path("layer").asText(null);
            if (layer == null) throw new IllegalArgumentException("quantization report row without 'layer'");
            Precision p;
            try {
                p = Precision.valueOf(n.path("precision").asText(""));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("report row " + layer + ": unknown precision " + n.path("precision"), e);
            }
            com.fasterxml.jackson.databind.JsonNode m = n.path("method");
            com.fasterxml.jackson.databind.JsonNode g = n.path("group");
            if (!g.isMissingNode() && !g.isNull() && !g.canConvertToInt()) {
                throw new IllegalArgumentException("report row " + layer + ": group must be an integer or null, got " + g);
            }
            rows.add(new Row(layer, p, n.path("inFeatures").asInt(), n.path("expandedFeatures").asInt(), n.path("outFeatures").asInt(),
                    number(n.path("threshold")), number(n.path("alpha")), number(n.path("relativeError")),
                    n.path("flopsPerToken").asLong(), m.isTextual() ? m.asText() : UNIFORM, g.isNumber() ? g.asInt() : 0));
        }
        return of(r.path("policy").asText(), rows);
    }

    private static double number(com.fasterxml.jackson.databind.JsonNode n) {
        return n.isNumber() ? n.asDouble() : Double.NaN;
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
