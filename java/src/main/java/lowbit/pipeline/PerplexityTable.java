package lowbit.pipeline;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import lowbit.eval.Perplexity;
import lowbit.quant.Precision;

/** Perplexity of several configurations on the same tokens, printed relative to the first (the FP reference). */
public final class PerplexityTable {
    /** One configuration's result; {@code int4Share} NaN when not applicable. */
    public record Row(String config, Perplexity.Result result, double int4Share) {}

    private final List<Row> rows = new ArrayList<>();

    public void add(String config, Perplexity.Result result, QuantizedModel quantized) {
        rows.add(new Row(config, result, quantized == null ? Double.NaN : quantized.report().share(Precision.INT4)));
    }

    public List<Row> rows() {
        return List.copyOf(rows);
    }

    /** A plain-text table; {@code markdown} gives a Markdown table instead. */
    public String format(boolean markdown) {
        StringBuilder b = new StringBuilder();
        double ref = rows.isEmpty() ? Double.NaN : rows.get(0).result().perplexity();
        String head = markdown ? "| configuration | perplexity | vs %s | INT4 compute share | tokens/s |%n|---|---:|---:|---:|---:|%n"
                : "%-58s %11s %9s %7s %9s%n";
        String line = markdown ? "| %s | %.4f | %s | %s | %.1f |%n" : "%-58s %11.4f %9s %7s %9.1f%n";
        String refName = rows.isEmpty() ? "ref" : rows.get(0).config();
        if (markdown) b.append(String.format(Locale.ROOT, head, refName));
        else b.append(String.format(Locale.ROOT, head, "configuration", "perplexity", "vs ref", "INT4", "tok/s"));
        for (Row r : rows) {
            double p = r.result().perplexity();
            String delta = r == rows.get(0) ? "-" : String.format(Locale.ROOT, "%+.2f%%", 100 * (p / ref - 1));
            String share = Double.isNaN(r.int4Share()) ? "-" : String.format(Locale.ROOT, "%.1f%%", 100 * r.int4Share());
            b.append(String.format(Locale.ROOT, line, r.config(), p, delta, share, r.result().tokensPerSecond()));
        }
        return b.toString();
    }
}
