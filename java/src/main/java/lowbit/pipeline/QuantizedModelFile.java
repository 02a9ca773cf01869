package lowbit.pipeline;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.Context;
import lowbit.io.SafetensorsDType;
import lowbit.io.SafetensorsFile;
import lowbit.io.SafetensorsTensorInfo;
import lowbit.model.FloatLinear;
import lowbit.model.LinearOp;
import lowbit.model.DecoderModel;
import lowbit.quant.FlattenPlan;
import lowbit.quant.Precision;
import lowbit.quant.QuantConfig;
import lowbit.quant.QuantizationReport;
import lowbit.quant.QuantizedLinear;

/**
 * The quantized model file: one safetensors file whose {@code __metadata__} entry {@code "lowbit"}
 * holds a JSON document describing everything, and whose tensors hold the packed data.
 *
 * <p>JSON: {@code format} ({@value #FORMAT}), {@code version} ({@value #VERSION}; other versions are
 * rejected), {@code method}, {@code description}, {@code calibrationTokens}, {@code base} (the base
 * model's shape: dim, blocks, ffn, heads, kvHeads, vocab; the file replaces block linears and norms
 * of that model, whose other weights come from its GGUF or checkpoint; {@code architecture} is present for non-LLaMA models), {@code layers} (per layer: name, kind
 * {@code quantized} or {@code float}; quantized: weightBits, activationBits, activationMode,
 * activationScale (null when dynamic), outFeatures, weightLd, plan (the {@link FlattenPlan} JSON),
 * hasBias), {@code norms} (names of norm weights with folded smoothing), {@code foldedAlphas} and
 * {@code report} (the {@link QuantizationReport} JSON). Tensors, per quantized layer {@code L}:
 * {@code L.qweight} (U8: the packed S8/S4 bytes of lowbit.h's layout), {@code L.wscale} (F32),
 * {@code L.bias} (F32, optional); per float layer {@code L.weight} (F32, rows x cols) and optional
 * bias; per norm {@code N.weight} (F32). Loading needs no calibration.
 */
public final class QuantizedModelFile {
    static final String FORMAT = "lowbit-quantized-model";
    static final int VERSION = 1;
    static final String KEY = "lowbit";
    private static final ObjectMapper JSON = new ObjectMapper();

    private QuantizedModelFile() {}

    /** Writes {@code q} to {@code file} (replacing it). */
    public static void save(QuantizedModel q, Path file) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        root.put("method", q.method().id());
        root.put("description", q.description());
        root.put("calibrationTokens", q.calibrationTokens());
        root.set("base", baseShape(q.model()));
        Map<String, Blob> tensors = new LinkedHashMap<>();
        ArrayNode layers = root.putArray("layers");
        for (Map.Entry<String, LinearOp> e : q.layers().entrySet()) {
            String name = e.getKey();
            ObjectNode l = layers.addObject();
            l.put("name", name);
            if (e.getValue() instanceof QuantizedLinear ql) {
                l.put("kind", "quantized");
                l.put("weightBits", ql.weightBits());
                l.put("activationBits", ql.activationBits());
                l.put("activationMode", ql.activationMode().name());
                if (ql.isDynamic()) l.putNull("activationScale");
                else l.put("activationScale", ql.activationScale());
                l.put("outFeatures", ql.outFeatures());
                l.put("weightLd", ql.weightLd());
                l.set("plan", JSON.readTree(ql.plan().toJson()));
                l.put("hasBias", ql.bias() != null);
                byte[] w = ql.packedWeights();
                tensors.put(name + ".qweight", new Blob(SafetensorsDType.U8, new long[] {w.length}, w));
                tensors.put(name + ".wscale", floats(ql.weightScales(), ql.weightScales().length));
                if (ql.bias() != null) tensors.put(name + ".bias", floats(ql.bias(), ql.outFeatures()));
            } else if (e.getValue() instanceof FloatLinear fl) {
                l.put("kind", "float");
                l.put("outFeatures", fl.outFeatures());
                l.put("inFeatures", fl.inFeatures());
                l.put("hasBias", fl.bias() != null);
                tensors.put(name + ".weight", floats(fl.weight(), fl.outFeatures(), fl.inFeatures()));
                if (fl.bias() != null) tensors.put(name + ".bias", floats(fl.bias(), fl.outFeatures()));
            } else {
                throw new IllegalArgumentException("layer " + name + " is a " + e.getValue().getClass().getSimpleName()
                        + "; only QuantizedLinear and FloatLinear layers can be saved");
            }
        }
        ArrayNode norms = root.putArray("norms");
        for (Map.Entry<String, float[]> e : q.foldedNorms().entrySet()) {
            norms.add(e.getKey());
            tensors.put(e.getKey() + ".weight", floats(e.getValue(), e.getValue().length));
        }
        ObjectNode alphas = root.putObject("foldedAlphas");
        for (Map.Entry<String, Double> e : q.foldedAlphas().entrySet()) {
            if (e.getValue().isNaN()) alphas.putNull(e.getKey());
            else alphas.put(e.getKey(), e.getValue());
        }
        root.set("report", JSON.readTree(q.report().toJson()));
        write(file, JSON.writeValueAsString(root), tensors);
    }

    /**
     * Reads {@code file} and installs its layers and norms into {@code base} (a freshly loaded FP
     * model of the same shape); quantized layers run on {@code ctx} (null: Java). Files of another
     * format or version, malformed files and shape mismatches throw {@link IOException} or {@link
     * IllegalArgumentException} naming the problem.
     */
    public static QuantizedModel load(Path file, DecoderModel base, Context ctx) throws IOException {
        Map<String, LinearOp> layers = new LinkedHashMap<>();
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            String text = st.metadata().get(KEY);
            if (text == null) throw new IOException(file + " is a safetensors file but not a lowbit quantized model (no '" + KEY + "' metadata)");
            JsonNode root;
            try {
                root = JSON.readTree(text);
            } catch (JsonProcessingException e) {
                throw new IOException(file + ": the '" + KEY + "' metadata is not valid JSON: " + e.getOriginalMessage(), e);
            }
            String format = root.path("format").asText("");
            int version = root.path("version").asInt(-1);
            if (!FORMAT.equals(format)) throw new IOException(file + " has format '" + format + "', expected '" + FORMAT + "'");
            if (version != VERSION) {
                throw new IOException(file + " is a " + FORMAT + " of version " + version + "; this build reads version " + VERSION
                        + " only (re-quantize with this build)");
            }
            QuantMethod method = QuantMethod.parse(required(root, "method", file).asText());
            JsonNode baseShape = required(root, "base", file);
            if (!baseShape.equals(baseShape(base))) {
                throw new IllegalArgumentException(file + " was made for a model of shape " + baseShape + ", the given model is "
                        + baseShape(base));
            }
            try {
                for (JsonNode l : required(root, "layers", file)) {
                    String name = required(l, "name", file).asText();
                    layers.put(name, readLayer(st, l, name, base, ctx, file));
                }
                Map<String, float[]> norms = new LinkedHashMap<>();
                for (JsonNode n : required(root, "norms", file)) {
                    norms.put(n.asText(), floats(st, n.asText() + ".weight", base.normWeight(n.asText()).length));
                }
                Map<String, Double> alphas = new LinkedHashMap<>();
                root.path("foldedAlphas").fields().forEachRemaining(e -> alphas.put(e.getKey(),
                        e.getValue().isNull() ? Double.NaN : e.getValue().asDouble()));
                QuantizationReport report = reportFrom(required(root, "report", file));
                return QuantizedModel.install(base, method, root.path("description").asText(), report, layers, norms, alphas,
                        root.path("calibrationTokens").asLong());
            } catch (IOException | RuntimeException e) {
                for (LinearOp op : layers.values()) op.close();
                throw e;
            }
        }
    }

    private static LinearOp readLayer(SafetensorsFile st, JsonNode l, String name, DecoderModel base, Context ctx, Path file)
            throws IOException {
        LinearOp fp = base.linear(name);
        String kind = required(l, "kind", file).asText();
        boolean hasBias = l.path("hasBias").asBoolean(false);
        int out = fp.outFeatures();
        float[] bias = hasBias ? floats(st, name + ".bias", out) : null;
        if (kind.equals("float")) {
            return new FloatLinear(floats(st, name + ".weight", (long) out * fp.inFeatures()), bias, out, fp.inFeatures());
        }
        if (!kind.equals("quantized")) throw new IOException(file + ": layer " + name + " has unknown kind '" + kind + "'");
        FlattenPlan plan = FlattenPlan.fromJson(required(l, "plan", file).toString());
        if (plan.inFeatures() != fp.inFeatures() || required(l, "outFeatures", file).asInt() != out) {
            throw new IOException(file + ": layer " + name + " is " + l.path("outFeatures").asInt() + " x " + plan.inFeatures()
                    + " in the file but " + out + " x " + fp.inFeatures() + " in the model");
        }
        QuantConfig.ActivationScale mode;
        try {
            mode = QuantConfig.ActivationScale.valueOf(required(l, "activationMode", file).asText());
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": layer " + name + " has unknown activation mode " + l.path("activationMode"), e);
        }
        float scale = l.path("activationScale").isNull() || l.path("activationScale").isMissingNode() ? Float.NaN
                : (float) l.path("activationScale").asDouble();
        SafetensorsTensorInfo qi = st.tensor(name + ".qweight");
        if (qi.dtype() != SafetensorsDType.U8) throw new IOException(file + ": " + name + ".qweight must be U8, is " + qi.dtype());
        byte[] packed = new byte[Math.toIntExact(qi.byteSize())];
        st.map(name + ".qweight").get(packed);
        SafetensorsTensorInfo si = st.tensor(name + ".wscale");
        float[] scales = floats(st, name + ".wscale", si.elementCount());
        QuantizedLinear q = QuantizedLinear.fromParts(plan, out, required(l, "weightBits", file).asInt(),
                required(l, "weightLd", file).asInt(), packed, scales, required(l, "activationBits", file).asInt(), mode, scale, bias);
        return ctx == null ? q : q.on(ctx);
    }

    private static QuantizationReport reportFrom(JsonNode r) {
        List<QuantizationReport.Row> rows = new ArrayList<>();
        for (JsonNode n : r.path("layers")) {
            rows.add(new QuantizationReport.Row(n.path("layer").asText(), Precision.valueOf(n.path("precision").asText()),
                    n.path("inFeatures").asInt(), n.path("expandedFeatures").asInt(), n.path("outFeatures").asInt(),
                    number(n.path("threshold")), number(n.path("alpha")), number(n.path("relativeError")),
                    n.path("flopsPerToken").asLong()));
        }
        return QuantizationReport.of(r.path("policy").asText(), rows);
    }

    private static double number(JsonNode n) {
        return n.isNumber() ? n.asDouble() : Double.NaN;
    }

    private static JsonNode required(JsonNode node, String field, Path file) throws IOException {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) throw new IOException(file + ": required field '" + field + "' is missing");
        return v;
    }

    private static float[] floats(SafetensorsFile st, String name, long count) throws IOException {
        SafetensorsTensorInfo t = st.tensor(name);
        if (t.dtype() != SafetensorsDType.F32 || t.elementCount() != count) {
            throw new IOException(st.path() + ": tensor " + name + " must be F32 with " + count + " elements, is " + t.dtype()
                    + " with " + t.elementCount());
        }
        return st.readFloats(name);
    }

    /** The base model's shape as the file records it ({@code architecture} only when not llama, so LLaMA files stay as they were). */
    private static ObjectNode baseShape(DecoderModel m) {
        DecoderModel.Shape c = m.shape();
        ObjectNode b = JSON.createObjectNode();
        if (!m.architecture().equals("llama")) b.put("architecture", m.architecture());
        b.put("dim", c.dim());
        b.put("blocks", c.blockCount());
        b.put("ffn", c.ffnDim());
        b.put("heads", c.headCount());
        b.put("kvHeads", c.kvHeadCount());
        b.put("vocab", c.vocabSize());
        return b;
    }

    // ---- safetensors writing -------------------------------------------------------------------------

    private record Blob(SafetensorsDType dtype, long[] shape, byte[] data) {}

    private static Blob floats(float[] v, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v);
        return new Blob(SafetensorsDType.F32, shape, b.array());
    }

    private static void write(Path file, String lowbitJson, Map<String, Blob> tensors) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        header.putObject("__metadata__").put(KEY, lowbitJson);
        long offset = 0;
        for (Map.Entry<String, Blob> e : tensors.entrySet()) {
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", e.getValue().dtype().name());
            ArrayNode shape = t.putArray("shape");
            for (long d : e.getValue().shape()) shape.add(d);
            ArrayNode offsets = t.putArray("data_offsets");
            offsets.add(offset);
            offset += e.getValue().data().length;
            offsets.add(offset);
        }
        byte[] json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] headerBytes = new byte[padded];
        java.util.Arrays.fill(headerBytes, (byte) ' ');
        System.arraycopy(json, 0, headerBytes, 0, json.length);
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (OutputStream out = new java.io.BufferedOutputStream(Files.newOutputStream(tmp), 1 << 20)) {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
            out.write(headerBytes);
            for (Blob b : tensors.values()) out.write(b.data());
        }
        Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }
}
