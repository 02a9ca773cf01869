package lowbit.quant;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Arrays;
import java.util.Objects;

/**
 * How one linear layer's K input channels become K' expanded channels (FlattenQuant's channel
 * flattening). Immutable.
 *
 * <p><b>The math.</b> Channel {@code j} is split into {@code k_j >= 1} copies, each carrying {@code
 * X[:,j] / k_j}, and the weight column {@code W[:,j]} is repeated {@code k_j} times; then {@code
 * X'·W'ᵀ = X·Wᵀ} exactly in real arithmetic, while the per-tensor activation maximum drops from
 * {@code max_j m_j} to {@code max_j m_j / k_j}. {@link #forThreshold} picks {@code k_j =
 * ceil(m_j / T)} for {@code m_j > T} (else 1), so every expanded channel stays within {@code T}. An
 * optional explicit smoothing scale {@code s_j} (SmoothQuant, when it cannot be folded into a
 * preceding norm) rides along: the activation is divided by {@code s_j} and the weight column
 * multiplied by it. {@code K' = sum_j k_j} plus optional zero padding at the end.
 *
 * <p><b>Layout a kernel reads directly.</b> For every expanded channel {@code j'} in {@code
 * 0..K'-1}: {@link #sourceChannels()}{@code [j']} (int, the input channel it reads) and {@link
 * #multipliers()}{@code [j']} (float32, {@code 1 / (k_j * s_j)}). The run-time flatten is {@code
 * x'[t][j'] = x[t][source[j']] * multiplier[j']} in float32, then per-tensor quantization as in
 * lowbit.h. Padding channels read channel 0 with multiplier 0 and have all-zero weights.
 *
 * <p><b>Order of expanded channels ({@link Order}).</b> {@link Order#APPENDED}, the default of
 * every factory: the first copy of every channel stays at its own index ({@code source[j] = j} for
 * {@code j < K}, multiplier {@code 1 / (k_j s_j)}), and the {@code k_j - 1} extra copies of every
 * split channel follow after column {@code K - 1}, channel by channel in increasing order (a
 * channel's extra copies together), then the padding. Why: a flatten-and-quantize kernel reads the
 * first K expanded columns as an aligned, elementwise stream of x's row (vector loads, no index
 * lookups, x times a multiplier vector), and only the short appended tail ({@code K' - K -
 * padding} columns) gathers, re-reading values of the same row it has just streamed. The expanded
 * weights follow the same order (column {@code j'} is {@code W[:,source[j']] * s_{source[j']}}),
 * and {@code X'·W'ᵀ = X·Wᵀ} holds in either order because a dot product does not depend on where
 * its terms sit; for given clip ratios a quantized layer is even bit-identical in both orders (the
 * same multiset of columns gives the same scales, and the integer accumulation is exact; a clip
 * search sums its errors in column order, so a near-tie may pick differently). The identity plan is
 * {@code source[j'] = j'} in both orders, so unflattened layers take the same kernel path. {@link
 * Order#ADJACENT} is the layout of version-1 JSON, written before the order existed and kept so
 * those files (whose stored expanded weights are in it) load as before: copies of a channel are
 * adjacent and channels keep their order, channel {@code j} occupying {@code [first_j, first_j +
 * k_j)} with {@code first_j = sum_{i<j} k_i}. Either way the plan is fully determined by {@code
 * copies[]}, the scale, the padding and the order, which is all the JSON form stores.
 */
public final class FlattenPlan {
    static final String FORMAT = "lowbit-flatten-plan";
    /** The version {@link #toJson} writes: it stores the {@link Order}. */
    static final int VERSION = 2;
    /** The version written before the order existed; its plans are {@link Order#ADJACENT}. */
    static final int VERSION_ADJACENT_ONLY = 1;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Where the copies of a split channel sit among the expanded channels (see the class comment). */
    public enum Order {
        /**
         * Expanded channel {@code j} is the first copy of input channel {@code j} for every {@code j
         * < K}; the extra copies of the split channels follow, in channel order; padding last.
         */
        APPENDED("appended"),
        /** Channel {@code j}'s copies occupy {@code [first_j, first_j + k_j)}; padding last (version-1 files). */
        ADJACENT("adjacent");

        private final String jsonName;

        Order(String jsonName) {
            this.jsonName = jsonName;
        }

        /** The value of the JSON form's {@code "order"}. */
        String jsonName() {
            return jsonName;
        }

        static Order fromJsonName(String name) {
            for (Order o : values()) {
                if (o.jsonName.equals(name)) {
                    return o;
                }
            }
            throw new IllegalArgumentException("flatten plan order '" + name + "' is unknown; expected 'appended' or 'adjacent'");
        }
    }

    private final int[] copies;
    private final double[] inputScale;
    private final int padding;
    private final Order order;
    private final int[] source;
    private final float[] multiplier;
    private final double[] exactMultiplier;

    private FlattenPlan(int[] copies, double[] inputScale, int padding, Order order) {
        this.copies = copies;
        this.inputScale = inputScale;
        this.padding = padding;
        this.order = order;
        long total = padding;
        for (int c : copies) {
            total += c;
        }
        if (total > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("flattened width " + total + " does not fit in an int");
        }
        int kp = (int) total;
        source = new int[kp];
        multiplier = new float[kp];
        exactMultiplier = new double[kp];
        if (order == Order.ADJACENT) {
            int at = 0;
            for (int j = 0; j < copies.length; j++) {
                for (int c = 0; c < copies[j]; c++) {
                    place(at++, j);
                }
            }
        } else {
            // first copies at their own index, then every channel's extra copies, channel by channel
            int at = copies.length;
            for (int j = 0; j < copies.length; j++) {
                place(j, j);
                for (int c = 1; c < copies[j]; c++) {
                    place(at++, j);
                }
            }
        }
        // padding: source 0, multiplier 0 (arrays are already zero)
    }

    /** Expanded channel {@code expanded} is a copy of input channel {@code j}: multiplier {@code 1/(k_j s_j)}. */
    private void place(int expanded, int j) {
        double m = 1.0 / (copies[j] * (inputScale == null ? 1.0 : inputScale[j]));
        source[expanded] = j;
        exactMultiplier[expanded] = m;
        multiplier[expanded] = (float) m;
    }

    /** No flattening: {@code K' = K}, {@code source[j] = j}, multipliers 1 ({@link Order#APPENDED}). */
    public static FlattenPlan identity(int inFeatures) {
        if (inFeatures < 1) {
            throw new IllegalArgumentException("a layer needs at least 1 input feature, got " + inFeatures);
        }
        int[] copies = new int[inFeatures];
        Arrays.fill(copies, 1);
        return new FlattenPlan(copies, null, 0, Order.APPENDED);
    }

    /** A plan with the given number of copies per input channel (each >= 1), {@link Order#APPENDED}. */
    public static FlattenPlan ofCopies(int[] copies) {
        if (copies.length < 1) {
            throw new IllegalArgumentException("a flatten plan needs at least 1 input channel");
        }
        for (int j = 0; j < copies.length; j++) {
            if (copies[j] < 1) {
                throw new IllegalArgumentException("channel " + j + " has " + copies[j] + " copies; every channel needs >= 1");
            }
        }
        return new FlattenPlan(copies.clone(), null, 0, Order.APPENDED);
    }

    /**
     * FlattenQuant's rule: {@code k_j = ceil(m_j / T)} for every channel whose calibrated max
     * {@code m_j = channelAbsMax[j]} exceeds the threshold {@code T}, else 1 ({@link Order#APPENDED}).
     */
    public static FlattenPlan forThreshold(float[] channelAbsMax, double threshold) {
        return ofCopies(copiesFor(channelAbsMax, threshold));
    }

    static int[] copiesFor(float[] channelAbsMax, double threshold) {
        if (!(threshold > 0) || Double.isInfinite(threshold)) {
            throw new IllegalArgumentException("flatten threshold must be finite and > 0, got " + threshold);
        }
        int[] copies = new int[channelAbsMax.length];
        for (int j = 0; j < copies.length; j++) {
            float m = channelAbsMax[j];
            if (!Float.isFinite(m) || m < 0) {
                throw new NonFiniteValueException("channel " + j + " max |x| must be finite and >= 0, got " + m);
            }
            double k = m > threshold ? Math.ceil(m / threshold) : 1;
            if (k > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("threshold " + threshold + " splits channel " + j + " into too many copies");
            }
            copies[j] = (int) k;
        }
        return copies;
    }

    /** {@code sum_j ceil(m_j / T)}, the K' the threshold would give (no padding). */
    static long expandedCount(float[] channelAbsMax, double threshold) {
        long total = 0;
        for (float m : channelAbsMax) {
            total += m > threshold ? (long) Math.ceil(m / threshold) : 1;
        }
        return total;
    }

    /**
     * The same copies with an explicit per-input-channel smoothing scale {@code s_j > 0}: the run
     * time divides channel j by {@code s_j} (through the multiplier) and {@link #expandWeights}
     * multiplies weight column j by it. Replaces any previous scale; keeps the order and padding.
     */
    public FlattenPlan withInputScale(double[] scale) {
        if (scale.length != copies.length) {
            throw new ShapeMismatchException("input scale has " + scale.length + " values for " + copies.length + " channels");
        }
        for (int j = 0; j < scale.length; j++) {
            if (!(scale[j] > 0) || Double.isInfinite(scale[j])) {
                throw new IllegalArgumentException("input scale of channel " + j + " must be finite and > 0, got " + scale[j]);
            }
        }
        return new FlattenPlan(copies, scale.clone(), padding, order);
    }

    /**
     * The same plan with zero channels at the end (after any appended copies) so that K' is a
     * multiple of {@code multiple}; replaces any previous padding, keeps the order.
     */
    public FlattenPlan paddedTo(int multiple) {
        if (multiple < 1) {
            throw new IllegalArgumentException("padding multiple must be >= 1, got " + multiple);
        }
        int unpadded = source.length - padding;
        int pad = (multiple - unpadded % multiple) % multiple;
        return new FlattenPlan(copies, inputScale, pad, order);
    }

    /**
     * The same copies, scale and padding laid out in {@code order}. Weights expanded for one order do
     * not fit the other: expand them again with the plan they run with.
     */
    public FlattenPlan withOrder(Order order) {
        Objects.requireNonNull(order, "order");
        return order == this.order ? this : new FlattenPlan(copies, inputScale, padding, order);
    }

    /** The order of the expanded channels. */
    public Order order() {
        return order;
    }

    /** K, the layer's input width. */
    public int inFeatures() {
        return copies.length;
    }

    /** K', the width of the flattened activations and expanded weights (padding included). */
    public int expandedFeatures() {
        return source.length;
    }

    /** K' / K. */
    public double expansionRatio() {
        return (double) source.length / copies.length;
    }

    /** {@code k_j}, the number of copies of input channel {@code j}. */
    public int copies(int channel) {
        return copies[channel];
    }

    /** Zero channels appended at the end. */
    public int padding() {
        return padding;
    }

    /** True when an explicit smoothing scale is part of the plan. */
    public boolean hasInputScale() {
        return inputScale != null;
    }

    /** The explicit smoothing scale {@code s_j}, or 1 when the plan has none. */
    public double inputScale(int channel) {
        return inputScale == null ? 1.0 : inputScale[channel];
    }

    /** Kernel array: source input channel of every expanded channel (a copy). */
    public int[] sourceChannels() {
        return source.clone();
    }

    /** Kernel array: float32 multiplier {@code 1/(k_j s_j)} of every expanded channel (a copy). */
    public float[] multipliers() {
        return multiplier.clone();
    }

    int sourceOf(int expanded) {
        return source[expanded];
    }

    float multiplierOf(int expanded) {
        return multiplier[expanded];
    }

    /**
     * The per-tensor max |x'| that flattening activations with per-channel maxima {@code
     * channelAbsMax} gives: {@code max_j' |m[source[j']] * multiplier[j']|} in float32, i.e. the
     * static activation amax of a calibrated layer.
     */
    public float flattenedAbsMax(float[] channelAbsMax) {
        if (channelAbsMax.length != copies.length) {
            throw new ShapeMismatchException("channel maxima: expected " + copies.length + " values, got " + channelAbsMax.length);
        }
        float amax = 0f;
        for (int j = 0; j < source.length; j++) {
            amax = Math.max(amax, Math.abs(channelAbsMax[source[j]] * multiplier[j]));
        }
        return amax;
    }

    /**
     * Run-time flatten in float32, exactly what a flatten kernel computes: {@code out[t][j'] =
     * x[t][source[j']] * multiplier[j']}. {@code x} holds {@code tokens x K} values.
     */
    public float[] flatten(float[] x, int tokens) {
        int k = copies.length;
        checkLength("activations", x.length, tokens, k);
        int kp = source.length;
        float[] out = new float[tokens * kp];
        for (int t = 0; t < tokens; t++) {
            int xo = t * k;
            int oo = t * kp;
            for (int j = 0; j < kp; j++) {
                out[oo + j] = x[xo + source[j]] * multiplier[j];
            }
        }
        return out;
    }

    /** FP64 flatten with the exact multipliers {@code 1/(k_j s_j)}, for reference computations. */
    public double[] flatten(double[] x, int tokens) {
        int k = copies.length;
        checkLength("activations", x.length, tokens, k);
        int kp = source.length;
        double[] out = new double[tokens * kp];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < kp; j++) {
                out[t * kp + j] = x[t * k + source[j]] * exactMultiplier[j];
            }
        }
        return out;
    }

    /**
     * Expanded weights {@code W'} (rows x K') from {@code W} (rows x K, row-major), in the plan's
     * order: column {@code j'} is {@code W[:,source[j']] * s_{source[j']}}; padding columns are 0.
     */
    public float[] expandWeights(float[] w, int rows) {
        int k = copies.length;
        checkLength("weights", w.length, rows, k);
        int kp = source.length;
        int real = kp - padding;
        float[] out = new float[rows * kp];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < real; j++) {
                int src = source[j];
                float v = w[r * k + src];
                out[r * kp + j] = inputScale == null ? v : (float) (v * inputScale[src]);
            }
        }
        return out;
    }

    /** FP64 version of {@link #expandWeights(float[], int)}. */
    public double[] expandWeights(double[] w, int rows) {
        int k = copies.length;
        checkLength("weights", w.length, rows, k);
        int kp = source.length;
        int real = kp - padding;
        double[] out = new double[rows * kp];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < real; j++) {
                out[r * kp + j] = w[r * k + source[j]] * inputScale(source[j]);
            }
        }
        return out;
    }

    private static void checkLength(String what, int length, int rows, int k) {
        if (rows < 0 || length != (long) rows * k) {
            throw new ShapeMismatchException(what + ": expected " + rows + " x " + k + " = " + ((long) rows * k)
                    + " values, got " + length);
        }
    }

    /**
     * JSON, version 2: {@code {"format","version":2,"order":"appended"|"adjacent","copies":[k_j],
     * "inputScale":[s_j] or null,"padding"}}.
     */
    public String toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", FORMAT);
        root.put("version", VERSION);
        root.put("order", order.jsonName());
        ArrayNode c = root.putArray("copies");
        for (int k : copies) {
            c.add(k);
        }
        if (inputScale == null) {
            root.putNull("inputScale");
        } else {
            ArrayNode s = root.putArray("inputScale");
            for (double v : inputScale) {
                s.add(v);
            }
        }
        root.put("padding", padding);
        return root.toString();
    }

    /**
     * Reads {@link #toJson()}'s form (version 2, either order) and version 1 (no {@code "order"}:
     * always {@link Order#ADJACENT}, the layout its files' weights were expanded in); other formats
     * or versions throw {@link UnsupportedFormatVersionException}, a missing or unknown order {@link
     * IllegalArgumentException}.
     */
    public static FlattenPlan fromJson(String json) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("flatten plan is not valid JSON: " + e.getOriginalMessage(), e);
        }
        return fromJson(root);
    }

    static FlattenPlan fromJson(JsonNode root) {
        String format = root.path("format").asText("");
        int version = root.path("version").asInt(-1);
        if (!FORMAT.equals(format) || (version != VERSION && version != VERSION_ADJACENT_ONLY)) {
            throw new UnsupportedFormatVersionException("flatten plan has format '" + format + "' version " + version
                    + "; this build reads '" + FORMAT + "' versions " + VERSION_ADJACENT_ONLY + " and " + VERSION);
        }
        JsonNode o = root.path("order");
        Order order;
        if (version == VERSION_ADJACENT_ONLY) {
            if (!o.isMissingNode()) {
                throw new IllegalArgumentException("flatten plan version 1 has no \"order\" (its copies are adjacent), got "
                        + o + "; an order needs version " + VERSION);
            }
            order = Order.ADJACENT;
        } else if (!o.isTextual()) {
            throw new IllegalArgumentException("flatten plan version " + VERSION
                    + " needs \"order\": \"appended\" or \"adjacent\", got " + (o.isMissingNode() ? "none" : o.toString()));
        } else {
            order = Order.fromJsonName(o.asText());
        }
        JsonNode c = root.path("copies");
        int[] copies = new int[c.size()];
        for (int i = 0; i < copies.length; i++) {
            copies[i] = c.get(i).asInt();
        }
        FlattenPlan plan = ofCopies(copies).withOrder(order);
        JsonNode s = root.path("inputScale");
        if (s.isArray()) {
            double[] scale = new double[s.size()];
            for (int i = 0; i < scale.length; i++) {
                scale[i] = s.get(i).asDouble();
            }
            plan = plan.withInputScale(scale);
        }
        int pad = root.path("padding").asInt(0);
        if (pad < 0) {
            throw new IllegalArgumentException("flatten plan padding must be >= 0, got " + pad);
        }
        return pad == 0 ? plan : new FlattenPlan(plan.copies, plan.inputScale, pad, plan.order);
    }

    /**
     * Same copies, scale, padding and order. Plans of different orders are different even where
     * their layouts coincide (no channel split), as their JSON forms differ.
     */
    @Override
    public boolean equals(Object o) {
        return o instanceof FlattenPlan p && p.padding == padding && p.order == order && Arrays.equals(p.copies, copies)
                && Arrays.equals(p.inputScale, inputScale);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * (31 * Arrays.hashCode(copies) + Arrays.hashCode(inputScale)) + padding) + order.ordinal();
    }

    @Override
    public String toString() {
        return "FlattenPlan[K=" + copies.length + ", K'=" + source.length + ", " + order.jsonName()
                + (inputScale != null ? ", scaled" : "") + (padding > 0 ? ", padding=" + padding : "") + "]";
    }
}
