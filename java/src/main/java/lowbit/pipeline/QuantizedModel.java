package lowbit.pipeline;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import lowbit.model.KvCache;
import lowbit.model.LinearOp;
import lowbit.model.DecoderModel;
import lowbit.quant.QuantizationReport;

/**
 * A {@link DecoderModel} whose block linear layers were replaced by a {@link QuantMethod} (by {@link
 * ModelQuantizer} or from a {@link QuantizedModelFile}): the model, the layers it now runs, the
 * normalization weights that carry folded smoothing vectors, and the per-layer report. Owns the
 * layers: {@link #close} frees their native resources (the model must not run afterwards).
 */
public final class QuantizedModel implements AutoCloseable {
    private final DecoderModel model;
    private final QuantMethod method;
    private final String description;
    private final QuantizationReport report;
    private final Map<String, LinearOp> layers;
    private final Map<String, float[]> norms;
    private final Map<String, Double> foldedAlphas;
    private final long calibrationTokens;
    private final String details;
    private final KvCache.Codec kvCodec;

    private QuantizedModel(DecoderModel model, QuantMethod method, String description, QuantizationReport report,
                           Map<String, LinearOp> layers, Map<String, float[]> norms, Map<String, Double> foldedAlphas,
                           long calibrationTokens, KvCache.Codec kvCodec) {
        this(model, method, description, report, layers, norms, foldedAlphas, calibrationTokens, kvCodec, "");
    }

    private QuantizedModel(DecoderModel model, QuantMethod method, String description, QuantizationReport report,
                           Map<String, LinearOp> layers, Map<String, float[]> norms, Map<String, Double> foldedAlphas,
                           long calibrationTokens, KvCache.Codec kvCodec, String details) {
        this.model = model;
        this.method = method;
        this.description = description;
        this.report = report;
        this.layers = Collections.unmodifiableMap(new LinkedHashMap<>(layers));
        this.norms = Collections.unmodifiableMap(new LinkedHashMap<>(norms));
        this.foldedAlphas = Collections.unmodifiableMap(new LinkedHashMap<>(foldedAlphas));
        this.calibrationTokens = calibrationTokens;
        this.details = details;
        this.kvCodec = kvCodec;
    }

    /** This result with the method's own per-layer figures ({@link #details}) added; it shares the layers, so use it instead of this one. */
    QuantizedModel withDetails(String text) {
        return new QuantizedModel(model, method, description, report, layers, norms, foldedAlphas, calibrationTokens, kvCodec,
                java.util.Objects.requireNonNull(text, "text"));
    }

    /**
     * A method's figures beyond the report's columns, printed after the table (e.g. abq-auto's
     * measured error and time of every candidate width per layer); empty for most methods.
     */
    public String details() {
        return details;
    }

    /** Sets {@code norms} and {@code layers} into {@code model} and wraps the result. */
    static QuantizedModel install(DecoderModel model, QuantMethod method, String description, QuantizationReport report,
                                  Map<String, LinearOp> layers, Map<String, float[]> norms, Map<String, Double> foldedAlphas,
                                  long calibrationTokens) {
        for (Map.Entry<String, float[]> e : norms.entrySet()) model.setNormWeight(e.getKey(), e.getValue());
        for (Map.Entry<String, LinearOp> e : layers.entrySet()) model.replaceLinear(e.getKey(), e.getValue());
        return new QuantizedModel(model, method, description, report, layers, norms, foldedAlphas, calibrationTokens, null);
    }

    /** {@link #install}, and the model's KV caches apply {@code codec} ({@link KvCodecModel}); null codec: as {@link #install}. */
    static QuantizedModel install(DecoderModel model, QuantMethod method, String description, QuantizationReport report,
                                  Map<String, LinearOp> layers, Map<String, float[]> norms, long calibrationTokens, KvCache.Codec codec) {
        QuantizedModel q = install(model, method, description, report, layers, norms, Map.of(), calibrationTokens);
        if (codec == null) return q;
        return new QuantizedModel(new KvCodecModel(model, codec), method, description, report, layers, norms, Map.of(), calibrationTokens, codec);
    }

    /** The codec the model's KV caches apply (e.g. FlatQuant's K transform and KV4 quantizer), or null for a plain cache. */
    public KvCache.Codec kvCodec() {
        return kvCodec;
    }

    public DecoderModel model() {
        return model;
    }

    public QuantMethod method() {
        return method;
    }

    /** The method and the search configuration, in words. */
    public String description() {
        return description;
    }

    public QuantizationReport report() {
        return report;
    }

    /** The replaced layers by name (QuantizedLinear, DgqLinear for the DGQ methods, or FloatLinear for FP16 fallbacks). */
    public Map<String, LinearOp> layers() {
        return layers;
    }

    /** Normalization weights with a folded smoothing vector, by name (live arrays: do not modify). */
    public Map<String, float[]> foldedNorms() {
        return norms;
    }

    /** The alpha chosen for each norm-sharing group (NaN: no smoothing), FlattenQuant only. */
    public Map<String, Double> foldedAlphas() {
        return foldedAlphas;
    }

    public long calibrationTokens() {
        return calibrationTokens;
    }

    /** The report table plus the folded smoothing alphas, one line per block, and the {@link #details}. */
    public String table() {
        StringBuilder b = new StringBuilder(report.toTable());
        if (!foldedAlphas.isEmpty()) {
            b.append("smoothing folded into norms (alpha; none = not smoothed):");
            int i = 0;
            for (Map.Entry<String, Double> e : foldedAlphas.entrySet()) {
                b.append(i++ % 4 == 0 ? "\n  " : "  ");
                b.append(String.format(Locale.ROOT, "%s %s", e.getKey(),
                        e.getValue().isNaN() ? "none" : String.format(Locale.ROOT, "%.2f", e.getValue())));
            }
            b.append('\n');
        }
        b.append(details);
        return b.toString();
    }

    @Override
    public void close() {
        for (LinearOp op : layers.values()) op.close();
    }
}
