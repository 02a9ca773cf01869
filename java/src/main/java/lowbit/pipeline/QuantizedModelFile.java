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
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.Context;
import lowbit.abq.AbqLinear;
import lowbit.abq.ActivationQuantizer;
import lowbit.abq.IntCodes;
import lowbit.abq.TransformedAbqLinear;
import lowbit.io.SafetensorsDType;
import lowbit.io.SafetensorsFile;
import lowbit.io.SafetensorsTensorInfo;
import lowbit.dgq.ActivationMode;
import lowbit.dgq.DgqLinear;
import lowbit.dgq.DgqQuantizedWeights;
import lowbit.dgq.WeightFormat;
import lowbit.calibrate.QuantSpec;
import lowbit.flatquant.ClippedWeights;
import lowbit.flatquant.FlatQuantKvCodec;
import lowbit.flatquant.FlatQuantLinear;
import lowbit.flatquant.OnlineTransform;
import lowbit.flatquant.TokenQuantizer;
import lowbit.model.KvCache;
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
 *
 * <p><b>Version 2</b> adds layers of kind {@code dgq} (DGQ A8W4); a file is written as version 2
 * only when it has such a layer, so files without DGQ stay version 1. Each flatten plan's JSON
 * carries its own version: plans written since the expanded-channel order exists are version 2
 * ({@code "order"}, lowbit.quant.FlattenPlan), which builds before it refuse with a clear error;
 * version-1 plans read as the adjacent order, the order their stored weights are in.
 * JSON per DGQ layer: format ({@link WeightFormat} name), group, outFeatures, inFeatures,
 * activationMode ({@link ActivationMode} name), activationScale (null in per-token mode), hasBias,
 * hasSmoothing. With {@code kp} = inFeatures rounded up to a multiple of G (the last group is partial
 * when G does not divide K; its padding columns are never read by an input): tensors {@code
 * L.dgq_codes} (U8, {@code n × ceil(kp/2)}: two 4-bit codes per byte in {@code lowbit_gemm_dgq}'s
 * layout, {@link DgqQuantizedWeights#packedCodes}), {@code L.dgq_gscale} (U8, {@code n × kp/G}:
 * integer group scales 1..255), {@code L.dgq_zero} (I8, {@code n × kp/G}:
 * zero points, asymmetric format only), {@code L.dgq_cscale} (F32, n: channel scales), {@code
 * L.dgq_ismooth} (F32, k: explicit inverse smoothing, when hasSmoothing), {@code L.bias} (optional).
 * Smoothing folded into norms appears, as for FlattenQuant, as norm weights. The report's rows carry
 * method and group. A version-1 file with a {@code dgq} layer is refused.
 *
 * <p><b>Version 3</b> adds FlatQuant: layers of kind {@code flatquant} ({@link FlatQuantLinear}), the
 * online transforms they share, and the KV-cache codec; a file is written as version 3 only when it
 * holds FlatQuant parts (older files keep their versions; this build reads 1, 2 and 3). FlatQuant's
 * channel scales and V transform are folded offline into the norms, ffn_up and attn_v (they appear
 * as norm weights and in the folded weights); nothing else of the calibration is needed to run, so
 * loading needs no recalibration. JSON per FlatQuant layer: weightBits, activationBits,
 * outFeatures, inFeatures, activationClip ({@code [σ(γ), σ(β)]}, the float32 values), hasBias,
 * transform (the name of an entry of {@code transforms}, or null). Tensors: {@code L.fq_codes} (U8:
 * the packed S8/S4 weight codes of lowbit.h's layout, {@link ClippedWeights#packed}), {@code
 * L.fq_wscale} (F32, n: per-channel weight scales), {@code L.bias} (optional). Root {@code
 * transforms}: per online transform (stored once, shared by the layers that read one input) name,
 * n1, n2, hasP1, hasP2 and tensors {@code T.kron_p1} (F32 n1 x n1) and {@code T.kron_p2} (F32 n2 x
 * n2), absent for an identity factor. Root {@code kvCache} (absent for a full-precision cache):
 * kind {@code flatquant}, bits, group, heads, kvHeads, headDim, packed (caches hold packed codes
 * rather than the same values as floats), and per layer keyClip and valueClip
 * (two FP64 numbers each); tensors {@code kv.N.pk} and {@code kv.N.pk_inv_t} (F32, headDim x
 * headDim: the K transform and its inverse transpose). A FlatQuant part in an older-version file is
 * refused.
 *
 * <p><b>Version 4</b> adds ABQ-LLM: layers of kind {@code abq} ({@link AbqLinear}: bit-plane weight
 * codes, any width per layer) and {@code abq-flat} ({@link TransformedAbqLinear}: the same behind a
 * FlatQuant online transform and activation clip); a file is written as version 4 only when it holds
 * such a layer (this build reads 1 to 4). Learned smoothing and the low-rank compensation are folded
 * into the norms and weights before the codes are made, so the codes, scales and zero points are the
 * whole layer. JSON per ABQ layer: weightPlanes (1..8), weightSigned, weightZeroPoints,
 * activationBits, activationAsymmetric, outFeatures, inFeatures, hasBias; {@code abq-flat} also
 * activationClip ({@code [hi, lo]}, float32 values in (0, 1]) and transform (as for FlatQuant: a
 * name in {@code transforms}, or null). Tensors: {@code L.abq_planes} (U8, {@code n × planes ×
 * ceil(k/8)}: {@link IntCodes#packedPlanes}, the codes as bit planes, LSB first, {@code planes / 8}
 * bytes per weight), {@code L.abq_wscale} (F32, n), {@code L.abq_wzero} (I32, n; when
 * weightZeroPoints), {@code L.bias} (optional). An ABQ layer in an older-version file is refused.
 */
public final class QuantizedModelFile {
    static final String FORMAT = "lowbit-quantized-model";
    /** The version of files without DGQ layers (readable by builds before DGQ). */
    static final int VERSION = 1;
    /** The version of files with DGQ layers (kind {@code dgq}). */
    static final int VERSION_DGQ = 2;
    /** The version of files with FlatQuant layers (kind {@code flatquant}), transforms or a KV codec; this build reads 1, 2 and 3. */
    static final int VERSION_FLATQUANT = 3;
    /** The version of files with ABQ-LLM layers (kinds {@code abq}, {@code abq-flat}); this build reads 1 to 4. */
    static final int VERSION_ABQ = 4;
    static final String KEY = "lowbit";
    private static final ObjectMapper JSON = new ObjectMapper();

    private QuantizedModelFile() {}

    /** Writes {@code q} to {@code file} (replacing it). */
    public static void save(QuantizedModel q, Path file) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        boolean hasDgq = q.layers().values().stream().anyMatch(op -> op instanceof DgqLinear);
        boolean hasFlatQuant = q.kvCodec() != null || q.layers().values().stream().anyMatch(op -> op instanceof FlatQuantLinear);
        boolean hasAbq = q.layers().values().stream().anyMatch(op -> op instanceof AbqLinear || op instanceof TransformedAbqLinear);
        root.put("version", hasAbq ? VERSION_ABQ : hasFlatQuant ? VERSION_FLATQUANT : hasDgq ? VERSION_DGQ : VERSION);
        root.put("method", q.method().id());
        root.put("description", q.description());
        root.put("calibrationTokens", q.calibrationTokens());
        root.set("base", baseShape(q.model()));
        Map<String, Blob> tensors = new LinkedHashMap<>();
        ArrayNode layers = root.putArray("layers");
        Map<OnlineTransform, String> transformNames = new IdentityHashMap<>();
        ArrayNode transforms = JSON.createArrayNode();
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
            } else if (e.getValue() instanceof DgqLinear dl) {
                DgqQuantizedWeights w = dl.weights();
                int n = w.rows(), k = dl.inFeatures(), kp = w.cols(), groups = kp / w.group();
                l.put("kind", "dgq");
                l.put("format", w.format().name());
                l.put("group", w.group());
                l.put("outFeatures", n);
                l.put("inFeatures", k);
                l.put("activationMode", dl.activationMode().name());
                if (dl.activationMode() == ActivationMode.PER_TOKEN) l.putNull("activationScale");
                else l.put("activationScale", dl.staticScale());
                float[] bias = dl.bias();
                float[] inv = dl.inverseSmoothing();
                l.put("hasBias", bias != null);
                l.put("hasSmoothing", inv != null);
                tensors.put(name + ".dgq_codes", new Blob(SafetensorsDType.U8, new long[] {n, (kp + 1) / 2}, w.packedCodes()));
                tensors.put(name + ".dgq_gscale", new Blob(SafetensorsDType.U8, new long[] {n, groups}, bytes(w.groupScales())));
                if (w.format() == WeightFormat.ASYMMETRIC_UINT4) {
                    tensors.put(name + ".dgq_zero", new Blob(SafetensorsDType.I8, new long[] {n, groups}, bytes(w.zeroPoints())));
                }
                tensors.put(name + ".dgq_cscale", floats(w.channelScales(), n));
                if (inv != null) tensors.put(name + ".dgq_ismooth", floats(inv, k));
                if (bias != null) tensors.put(name + ".bias", floats(bias, n));
            } else if (e.getValue() instanceof FlatQuantLinear fq) {
                ClippedWeights w = fq.weights();
                float[] bias = fq.bias();
                l.put("kind", "flatquant");
                l.put("weightBits", w.bits());
                l.put("activationBits", fq.activations().bits());
                l.put("outFeatures", w.rows());
                l.put("inFeatures", w.cols());
                l.putArray("activationClip").add((double) fq.activations().clipHi()).add((double) fq.activations().clipLo());
                l.put("hasBias", bias != null);
                putTransform(l, name, fq.transform(), transformNames, transforms, tensors);
                byte[] codes = w.packed();
                tensors.put(name + ".fq_codes", new Blob(SafetensorsDType.U8, new long[] {codes.length}, codes));
                tensors.put(name + ".fq_wscale", floats(w.scales(), w.rows()));
                if (bias != null) tensors.put(name + ".bias", floats(bias, w.rows()));
            } else if (e.getValue() instanceof AbqLinear al) {
                l.put("kind", "abq");
                saveAbq(l, tensors, name, al);
            } else if (e.getValue() instanceof TransformedAbqLinear tl) {
                l.put("kind", "abq-flat");
                saveAbq(l, tensors, name, tl.layer());
                l.putArray("activationClip").add((double) tl.clipHi()).add((double) tl.clipLo());
                putTransform(l, name, tl.transform(), transformNames, transforms, tensors);
            } else if (e.getValue() instanceof FloatLinear fl) {
                l.put("kind", "float");
                l.put("outFeatures", fl.outFeatures());
                l.put("inFeatures", fl.inFeatures());
                l.put("hasBias", fl.bias() != null);
                tensors.put(name + ".weight", floats(fl.weight(), fl.outFeatures(), fl.inFeatures()));
                if (fl.bias() != null) tensors.put(name + ".bias", floats(fl.bias(), fl.outFeatures()));
            } else {
                throw new IllegalArgumentException("layer " + name + " is a " + e.getValue().getClass().getSimpleName()
                        + "; only QuantizedLinear, DgqLinear, FlatQuantLinear, AbqLinear, TransformedAbqLinear and FloatLinear layers can be saved");
            }
        }
        if (!transforms.isEmpty()) root.set("transforms", transforms);
        if (q.kvCodec() != null) root.set("kvCache", saveKvCodec(q.kvCodec(), tensors));
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
            if (version < VERSION || version > VERSION_ABQ) {
                throw new IOException(file + " is a " + FORMAT + " of version " + version + "; this build reads versions " + VERSION
                        + " to " + VERSION_ABQ + " only (re-quantize with this build)");
            }
            if (version < VERSION_FLATQUANT && (root.has("transforms") || root.has("kvCache"))) {
                throw new IOException(file + ": FlatQuant transforms or a KV codec, which version " + version + " files cannot hold");
            }
            QuantMethod method = QuantMethod.parse(required(root, "method", file).asText());
            JsonNode baseShape = required(root, "base", file);
            if (!baseShape.equals(baseShape(base))) {
                throw new IllegalArgumentException(file + " was made for a model of shape " + baseShape + ", the given model is "
                        + baseShape(base));
            }
            try {
                Map<String, OnlineTransform> transforms = readTransforms(st, root.path("transforms"), file);
                for (JsonNode l : required(root, "layers", file)) {
                    String name = required(l, "name", file).asText();
                    layers.put(name, readLayer(st, l, name, base, ctx, file, version, transforms));
                }
                KvCache.Codec codec = root.has("kvCache") ? readKvCodec(st, root.get("kvCache"), base, file) : null;
                Map<String, float[]> norms = new LinkedHashMap<>();
                for (JsonNode n : required(root, "norms", file)) {
                    norms.put(n.asText(), floats(st, n.asText() + ".weight", base.normWeight(n.asText()).length));
                }
                Map<String, Double> alphas = new LinkedHashMap<>();
                root.path("foldedAlphas").fields().forEachRemaining(e -> alphas.put(e.getKey(),
                        e.getValue().isNull() ? Double.NaN : e.getValue().asDouble()));
                QuantizationReport report;
                try {
                    report = QuantizationReport.fromJson(required(root, "report", file));
                } catch (IllegalArgumentException e) {
                    throw new IOException(file + ": malformed report: " + e.getMessage(), e);
                }
                if (codec != null) {
                    if (!alphas.isEmpty()) throw new IOException(file + ": a file with a KV codec has no folded alphas");
                    return QuantizedModel.install(base, method, root.path("description").asText(), report, layers, norms,
                            root.path("calibrationTokens").asLong(), codec);
                }
                return QuantizedModel.install(base, method, root.path("description").asText(), report, layers, norms, alphas,
                        root.path("calibrationTokens").asLong());
            } catch (IOException | RuntimeException e) {
                for (LinearOp op : layers.values()) op.close();
                throw e;
            }
        }
    }

    private static LinearOp readLayer(SafetensorsFile st, JsonNode l, String name, DecoderModel base, Context ctx, Path file,
                                      int version, Map<String, OnlineTransform> transforms) throws IOException {
        LinearOp fp = base.linear(name);
        String kind = required(l, "kind", file).asText();
        if (kind.equals("abq") || kind.equals("abq-flat")) {
            if (version < VERSION_ABQ) {
                throw new IOException(file + ": layer " + name + " is of kind '" + kind + "', which version " + version + " files cannot hold");
            }
            return readAbq(st, l, name, fp, ctx, file, transforms, kind.equals("abq-flat"));
        }
        if (kind.equals("flatquant")) {
            if (version < VERSION_FLATQUANT) {
                throw new IOException(file + ": layer " + name + " is of kind 'flatquant', which version " + version + " files cannot hold");
            }
            return readFlatQuant(st, l, name, fp, ctx, file, transforms);
        }
        if (kind.equals("dgq")) {
            if (version < VERSION_DGQ) {
                throw new IOException(file + ": layer " + name + " is of kind 'dgq', which version " + version + " files cannot hold");
            }
            return readDgq(st, l, name, fp, ctx, file);
        }
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

    private static LinearOp readDgq(SafetensorsFile st, JsonNode l, String name, LinearOp fp, Context ctx, Path file)
            throws IOException {
        if (ctx == null) {
            throw new IllegalArgumentException(file + ": layer " + name + " is DGQ, which runs on a native context; pass one to load");
        }
        int n = fp.outFeatures(), k = fp.inFeatures();
        if (required(l, "outFeatures", file).asInt() != n || required(l, "inFeatures", file).asInt() != k) {
            throw new IOException(file + ": DGQ layer " + name + " is " + l.path("outFeatures").asInt() + " x "
                    + l.path("inFeatures").asInt() + " in the file but " + n + " x " + k + " in the model");
        }
        WeightFormat format;
        ActivationMode mode;
        try {
            format = WeightFormat.valueOf(required(l, "format", file).asText());
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": DGQ layer " + name + " has unknown weight format " + l.path("format"), e);
        }
        try {
            mode = ActivationMode.valueOf(required(l, "activationMode", file).asText());
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": DGQ layer " + name + " has unknown activation mode " + l.path("activationMode"), e);
        }
        JsonNode gNode = required(l, "group", file);
        int group = gNode.asInt();
        if (!gNode.isIntegralNumber() || group < 1 || group > 4096) {
            throw new IOException(file + ": DGQ layer " + name + " has group size " + gNode + ", which must be an integer in 1..4096");
        }
        int kp = (k + group - 1) / group * group;
        float scale = 1f;
        if (mode == ActivationMode.STATIC_PER_TENSOR) {
            JsonNode sc = required(l, "activationScale", file);
            scale = (float) sc.asDouble();
            if (!sc.isNumber() || !(scale > 0 && Float.isFinite(scale))) {
                throw new IOException(file + ": DGQ layer " + name + " has static activation scale " + sc + ", which must be finite and > 0");
            }
        }
        int groups = n * (kp / group);
        byte[] codes = u8(st, name + ".dgq_codes", SafetensorsDType.U8, (long) n * ((kp + 1) / 2));
        byte[] gs = u8(st, name + ".dgq_gscale", SafetensorsDType.U8, groups);
        int[] s2 = new int[groups];
        for (int i = 0; i < groups; i++) s2[i] = gs[i] & 0xFF;
        int[] zero = null;
        if (format == WeightFormat.ASYMMETRIC_UINT4) {
            byte[] z = u8(st, name + ".dgq_zero", SafetensorsDType.I8, groups);
            zero = new int[groups];
            for (int i = 0; i < groups; i++) zero[i] = z[i];
        } else if (st.tensors().containsKey(name + ".dgq_zero")) {
            throw new IOException(file + ": DGQ layer " + name + " is " + format + " but has zero points");
        }
        float[] cscale = floats(st, name + ".dgq_cscale", n);
        for (int j = 0; j < n; j++) {
            if (!Float.isFinite(cscale[j])) throw new IOException(file + ": DGQ layer " + name + " channel scale " + j + " is " + cscale[j]);
        }
        float[] inv = l.path("hasSmoothing").asBoolean(false) ? floats(st, name + ".dgq_ismooth", k) : null;
        float[] bias = l.path("hasBias").asBoolean(false) ? floats(st, name + ".bias", n) : null;
        DgqQuantizedWeights w;
        try {
            w = DgqQuantizedWeights.fromPacked(n, kp, group, format, codes, s2, zero, cscale);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": DGQ layer " + name + " is malformed: " + e.getMessage(), e);
        }
        try {
            return DgqLinear.of(ctx, w, k, bias, inv, mode, scale);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": DGQ layer " + name + " is malformed: " + e.getMessage(), e);
        }
    }

    // ---- FlatQuant ----------------------------------------------------------------------------------

    /**
     * The layer's {@code transform} field: null, or the name of its online transform, stored once
     * (under the name of the first layer that reads it) for all layers that share it.
     */
    private static void putTransform(ObjectNode l, String name, OnlineTransform t, Map<OnlineTransform, String> transformNames,
                                     ArrayNode transforms, Map<String, Blob> tensors) {
        if (t == null) {
            l.putNull("transform");
            return;
        }
        String tn = transformNames.get(t);
        if (tn == null) {
            tn = name;
            transformNames.put(t, tn);
            saveTransform(transforms, tensors, tn, t);
        }
        l.put("transform", tn);
    }

    /** The layer's activation clip {@code [hi, lo]} (two numbers), read as the file holds them. */
    private static double[] clipPair(JsonNode l, String what, Path file) throws IOException {
        JsonNode clip = required(l, "activationClip", file);
        if (!clip.isArray() || clip.size() != 2 || !clip.get(0).isNumber() || !clip.get(1).isNumber()) {
            throw new IOException(file + ": " + what + " has activationClip " + clip + ", which must be two numbers");
        }
        return new double[] {clip.get(0).asDouble(), clip.get(1).asDouble()};
    }

    /** The online transform the layer's {@code transform} field names (null: none), from the file's transforms. */
    private static OnlineTransform namedTransform(JsonNode l, String what, Map<String, OnlineTransform> transforms, Path file)
            throws IOException {
        JsonNode tn = l.get("transform");
        if (tn == null || tn.isNull()) return null;
        OnlineTransform t = transforms.get(tn.asText());
        if (t == null) throw new IOException(file + ": " + what + " names transform '" + tn.asText() + "', which the file does not hold");
        return t;
    }

    private static void saveTransform(ArrayNode transforms, Map<String, Blob> tensors, String name, OnlineTransform t) {
        int[] f = t.factorSizes();
        float[] p1 = t.p1(), p2 = t.p2();
        ObjectNode n = transforms.addObject();
        n.put("name", name);
        n.put("n1", f[0]);
        n.put("n2", f[1]);
        n.put("hasP1", p1 != null);
        n.put("hasP2", p2 != null);
        if (p1 != null) tensors.put(name + ".kron_p1", floats(p1, f[0], f[0]));
        if (p2 != null) tensors.put(name + ".kron_p2", floats(p2, f[1], f[1]));
    }

    private static Map<String, OnlineTransform> readTransforms(SafetensorsFile st, JsonNode list, Path file) throws IOException {
        Map<String, OnlineTransform> out = new LinkedHashMap<>();
        if (list.isMissingNode() || list.isNull()) return out;
        if (!list.isArray()) throw new IOException(file + ": 'transforms' must be a list");
        for (JsonNode t : list) {
            String name = required(t, "name", file).asText();
            int n1 = factorSize(t, "n1", name, file), n2 = factorSize(t, "n2", name, file);
            float[] p1 = t.path("hasP1").asBoolean(false) ? floats(st, name + ".kron_p1", (long) n1 * n1) : null;
            float[] p2 = t.path("hasP2").asBoolean(false) ? floats(st, name + ".kron_p2", (long) n2 * n2) : null;
            try {
                if (out.put(name, OnlineTransform.ofFloats(p1, n1, p2, n2)) != null) throw new IOException(file + ": transform " + name + " appears twice");
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": transform " + name + " is malformed: " + e.getMessage(), e);
            }
        }
        return out;
    }

    private static int factorSize(JsonNode t, String field, String name, Path file) throws IOException {
        JsonNode v = required(t, field, file);
        if (!v.isIntegralNumber() || v.asInt() < 1 || v.asInt() > 1 << 16) {
            throw new IOException(file + ": transform " + name + " has " + field + " = " + v + ", which must be an integer in 1..65536");
        }
        return v.asInt();
    }

    private static LinearOp readFlatQuant(SafetensorsFile st, JsonNode l, String name, LinearOp fp, Context ctx, Path file,
                                          Map<String, OnlineTransform> transforms) throws IOException {
        if (ctx == null) {
            throw new IllegalArgumentException(file + ": layer " + name + " is FlatQuant, which runs on a native context; pass one to load");
        }
        int n = fp.outFeatures(), k = fp.inFeatures();
        if (required(l, "outFeatures", file).asInt() != n || required(l, "inFeatures", file).asInt() != k) {
            throw new IOException(file + ": FlatQuant layer " + name + " is " + l.path("outFeatures").asInt() + " x "
                    + l.path("inFeatures").asInt() + " in the file but " + n + " x " + k + " in the model");
        }
        int wBits = required(l, "weightBits", file).asInt(), aBits = required(l, "activationBits", file).asInt();
        double[] clip = clipPair(l, "FlatQuant layer " + name, file);
        OnlineTransform t = namedTransform(l, "FlatQuant layer " + name, transforms, file);
        long bytes = wBits == 8 ? (long) n * k : (long) n * (k + (k & 1)) / 2;
        byte[] codes = u8(st, name + ".fq_codes", SafetensorsDType.U8, bytes);
        float[] scales = floats(st, name + ".fq_wscale", n);
        float[] bias = l.path("hasBias").asBoolean(false) ? floats(st, name + ".bias", n) : null;
        try {
            ClippedWeights w = ClippedWeights.fromPacked(wBits, n, k, codes, scales);
            TokenQuantizer a = new TokenQuantizer(aBits, (float) clip[0], (float) clip[1]);
            return FlatQuantLinear.of(ctx, w, bias, a, t);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": FlatQuant layer " + name + " is malformed: " + e.getMessage(), e);
        }
    }

    // ---- ABQ-LLM -------------------------------------------------------------------------------------

    private static void saveAbq(ObjectNode l, Map<String, Blob> tensors, String name, AbqLinear layer) {
        IntCodes w = layer.weights();
        int n = w.rows(), k = w.cols();
        ActivationQuantizer a = layer.activations();
        l.put("weightPlanes", w.planes());
        l.put("weightSigned", w.isSigned());
        l.put("weightZeroPoints", w.hasZeroPoints());
        l.put("activationBits", a.bits());
        l.put("activationAsymmetric", a.isAsymmetric());
        l.put("outFeatures", n);
        l.put("inFeatures", k);
        float[] bias = layer.bias();
        l.put("hasBias", bias != null);
        tensors.put(name + ".abq_planes", new Blob(SafetensorsDType.U8, new long[] {n, w.planes(), IntCodes.planeRowBytes(k)}, w.packedPlanes()));
        tensors.put(name + ".abq_wscale", floats(w.scales(), n));
        if (w.hasZeroPoints()) tensors.put(name + ".abq_wzero", ints(w.zeroPoints(), n));
        if (bias != null) tensors.put(name + ".bias", floats(bias, n));
    }

    private static LinearOp readAbq(SafetensorsFile st, JsonNode l, String name, LinearOp fp, Context ctx, Path file,
                                    Map<String, OnlineTransform> transforms, boolean flat) throws IOException {
        String what = (flat ? "ABQ (FlatQuant transform) layer " : "ABQ layer ") + name;
        if (ctx == null) {
            throw new IllegalArgumentException(file + ": " + what + " runs the bit-plane GEMM on a native context; pass one to load");
        }
        int n = fp.outFeatures(), k = fp.inFeatures();
        if (required(l, "outFeatures", file).asInt() != n || required(l, "inFeatures", file).asInt() != k) {
            throw new IOException(file + ": " + what + " is " + l.path("outFeatures").asInt() + " x " + l.path("inFeatures").asInt()
                    + " in the file but " + n + " x " + k + " in the model");
        }
        JsonNode pl = required(l, "weightPlanes", file);
        if (!pl.isIntegralNumber() || pl.asInt() < 1 || pl.asInt() > 8) {
            throw new IOException(file + ": " + what + " has weightPlanes = " + pl + ", which must be an integer in 1..8");
        }
        int planes = pl.asInt();
        boolean signed = required(l, "weightSigned", file).asBoolean();
        boolean zeroPoints = required(l, "weightZeroPoints", file).asBoolean();
        int aBits = required(l, "activationBits", file).asInt();
        boolean aAsym = required(l, "activationAsymmetric", file).asBoolean();
        byte[] packed = u8(st, name + ".abq_planes", SafetensorsDType.U8, (long) n * planes * IntCodes.planeRowBytes(k));
        float[] scales = floats(st, name + ".abq_wscale", n);
        int[] zeros = zeroPoints ? ints(st, name + ".abq_wzero", n) : null;
        float[] bias = l.path("hasBias").asBoolean(false) ? floats(st, name + ".bias", n) : null;
        double[] clip = flat ? clipPair(l, what, file) : null;
        OnlineTransform t = flat ? namedTransform(l, what, transforms, file) : null;
        AbqLinear layer;
        try {
            IntCodes codes = IntCodes.fromPlanes(n, k, planes, signed, packed, scales, zeros);
            layer = AbqLinear.of(ctx, codes, bias, new ActivationQuantizer(aBits, aAsym));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + what + " is malformed: " + e.getMessage(), e);
        }
        if (!flat) return layer;
        try {
            return TransformedAbqLinear.of(t, clip[0], clip[1], layer);
        } catch (IllegalArgumentException e) {
            layer.close();
            throw new IOException(file + ": " + what + " is malformed: " + e.getMessage(), e);
        }
    }

    private static int[] ints(SafetensorsFile st, String name, long count) throws IOException {
        SafetensorsTensorInfo t = st.tensor(name);
        if (t.dtype() != SafetensorsDType.I32 || t.elementCount() != count) {
            throw new IOException(st.path() + ": tensor " + name + " must be I32 with " + count + " elements, is " + t.dtype()
                    + " with " + t.elementCount());
        }
        int[] out = new int[Math.toIntExact(count)];
        st.map(name).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(out);
        return out;
    }

    private static ObjectNode saveKvCodec(KvCache.Codec codec, Map<String, Blob> tensors) {
        if (!(codec instanceof FlatQuantKvCodec c)) {
            throw new IllegalArgumentException("the KV codec is a " + codec.getClass().getSimpleName() + "; only FlatQuantKvCodec can be saved");
        }
        ObjectNode n = JSON.createObjectNode();
        n.put("kind", "flatquant");
        n.put("bits", c.spec().bits());
        n.put("group", c.spec().groupSize());
        n.put("heads", c.heads());
        n.put("kvHeads", c.kvHeads());
        n.put("headDim", c.headDim());
        n.put("packed", c.isPacked());
        ArrayNode layers = n.putArray("layers");
        int hd = c.headDim();
        for (int i = 0; i < c.layers().size(); i++) {
            FlatQuantKvCodec.Layer l = c.layers().get(i);
            ObjectNode o = layers.addObject();
            o.putArray("keyClip").add(l.keyClip()[0]).add(l.keyClip()[1]);
            o.putArray("valueClip").add(l.valueClip()[0]).add(l.valueClip()[1]);
            tensors.put("kv." + i + ".pk", floats(l.pk(), hd, hd));
            tensors.put("kv." + i + ".pk_inv_t", floats(l.pkInverseTranspose(), hd, hd));
        }
        return n;
    }

    private static KvCache.Codec readKvCodec(SafetensorsFile st, JsonNode n, DecoderModel base, Path file) throws IOException {
        String kind = required(n, "kind", file).asText();
        if (!kind.equals("flatquant")) throw new IOException(file + ": KV codec of unknown kind '" + kind + "'");
        DecoderModel.Shape s = base.shape();
        int heads = required(n, "heads", file).asInt(), kvHeads = required(n, "kvHeads", file).asInt(), hd = required(n, "headDim", file).asInt();
        if (heads != s.headCount() || kvHeads != s.kvHeadCount() || (long) heads * hd != s.dim()) {
            throw new IOException(file + ": the KV codec is for " + heads + " heads (" + kvHeads + " KV heads) of " + hd + " values, the model has "
                    + s.headCount() + " (" + s.kvHeadCount() + ") of " + s.dim() / Math.max(1, s.headCount()));
        }
        JsonNode layers = required(n, "layers", file);
        if (!layers.isArray() || layers.size() != s.blockCount()) {
            throw new IOException(file + ": the KV codec has " + layers.size() + " layers, the model " + s.blockCount() + " blocks");
        }
        List<FlatQuantKvCodec.Layer> list = new ArrayList<>();
        for (int i = 0; i < layers.size(); i++) {
            JsonNode l = layers.get(i);
            list.add(new FlatQuantKvCodec.Layer(floats(st, "kv." + i + ".pk", (long) hd * hd), floats(st, "kv." + i + ".pk_inv_t", (long) hd * hd),
                    pair(l, "keyClip", i, file), pair(l, "valueClip", i, file)));
        }
        try {
            return new FlatQuantKvCodec(heads, kvHeads, hd, QuantSpec.grouped(required(n, "bits", file).asInt(), false, required(n, "group", file).asInt()), list,
                    n.path("packed").asBoolean(false));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": the KV codec is malformed: " + e.getMessage(), e);
        }
    }

    private static double[] pair(JsonNode l, String field, int layer, Path file) throws IOException {
        JsonNode v = l.get(field);
        if (v == null || !v.isArray() || v.size() != 2 || !v.get(0).isNumber() || !v.get(1).isNumber()) {
            throw new IOException(file + ": KV codec layer " + layer + " has " + field + " " + v + ", which must be two numbers");
        }
        return new double[] {v.get(0).asDouble(), v.get(1).asDouble()};
    }

    private static byte[] u8(SafetensorsFile st, String name, SafetensorsDType dtype, long count) throws IOException {
        SafetensorsTensorInfo t = st.tensor(name);
        if (t.dtype() != dtype || t.elementCount() != count) {
            throw new IOException(st.path() + ": tensor " + name + " must be " + dtype + " with " + count + " elements, is " + t.dtype()
                    + " with " + t.elementCount());
        }
        byte[] out = new byte[Math.toIntExact(count)];
        st.map(name).get(out);
        return out;
    }

    private static byte[] bytes(int[] v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) b[i] = (byte) v[i];
        return b;
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

    private static Blob ints(int[] v, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(v);
        return new Blob(SafetensorsDType.I32, shape, b.array());
    }

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
