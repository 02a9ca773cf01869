package lowbit.pipeline;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;
import lowbit.abq.AbqConfig;
import lowbit.dgq.ActivationMode;
import lowbit.dgq.DgqConfig;

/**
 * The whole-model quantization configurations lowbit compares. The LM head ({@code output}) stays
 * FP32 in all of them; "per channel" weights have one scale per output channel.
 */
public enum QuantMethod {
    /** The FP32 reference (the GGUF weights dequantized). */
    FP("fp", "FP32 reference"),
    /** INT8 weights (per channel, round to nearest), INT8 activations with one calibrated per-tensor scale; no flattening, no smoothing. */
    W8A8_STATIC("w8a8-static", "W8A8 per-tensor static activations, no flattening or smoothing"),
    /** FlattenQuant at INT8 everywhere: smoothing, channel flattening, weight clipping, static per-tensor activations. */
    W8A8_FLATTEN("w8a8-flatten", "W8A8 FlattenQuant (smoothing + flattening, static per-tensor activations)"),
    /** FlattenQuant with the paper's mixed policy: least sensitive layers W4A4 up to 48.29% of compute, the rest W8A8. */
    FLATTEN_MIXED("flatten-mixed", "FlattenQuant mixed INT4/INT8 (INT4 share target 48.29%)"),
    /** INT4 weights (per channel, round to nearest), INT8 activations with a dynamic scale per token. */
    W4A8_RTN("w4a8-rtn", "W4A8 RTN (per-channel INT4 weights, per-token INT8 activations)"),
    /** INT8 weights (per channel, round to nearest), INT8 activations with a dynamic scale per token; no smoothing. */
    W8A8_TOKEN("w8a8-token", "W8A8 per-token dynamic activations (no smoothing)"),
    /**
     * DGQ A8W4, G = 128, the default variant ({@link DgqConfig#defaults()}): asymmetric UINT4 codes
     * with INT8 zero points and integer group scales, per-token dynamic INT8 activations, no smoothing.
     */
    DGQ("dgq", "DGQ A8W4 G=128 (UINT4 + INT8 zero points, per-token A8, no smoothing)"),
    /** {@link #DGQ} with G = 64. */
    DGQ_G64("dgq-g64", "DGQ A8W4 G=64 (UINT4 + INT8 zero points, per-token A8, no smoothing)"),
    /** {@link #DGQ} with G = 32, the smallest group the issue allows. */
    DGQ_G32("dgq-g32", "DGQ A8W4 G=32 (UINT4 + INT8 zero points, per-token A8, no smoothing)"),
    /**
     * DGQ A8W4, G = 128, the authors' code's setting: asymmetric UINT4, one static per-tensor INT8
     * activation scale from calibration, percentile-clipping smoothing (p = 0.995 of channel maxima).
     */
    DGQ_AUTHORS("dgq-authors", "DGQ A8W4 G=128 authors' variant (static per-tensor A8, percentile smoothing p=0.995)"),
    // ABQ-LLM: asymmetric per-channel weights and per-token dynamic activations on the bit-plane
    // GEMM (AbqLinear). "abq-WxAy": calibrated with LWC, LET (alpha 0.5), the compensation vectors
    // and the distribution-correction loss; "-nodc": the same with the plain MSE loss; "-rtn":
    // round to nearest, nothing learned. W2* is the bit-balanced 5-level 2-bit grid (quote the name
    // in a shell: the star).
    ABQ_W6A6("abq-w6a6", "ABQ W6A6 (LWC + LET + compensation, distribution correction)"),
    ABQ_W6A6_NODC("abq-w6a6-nodc", "ABQ W6A6 (LWC + LET + compensation, MSE loss only)"),
    ABQ_W6A6_RTN("abq-w6a6-rtn", "W6A6 RTN (per-channel asymmetric weights, per-token asymmetric activations)"),
    ABQ_W4A4("abq-w4a4", "ABQ W4A4 (LWC + LET + compensation, distribution correction)"),
    ABQ_W4A4_NODC("abq-w4a4-nodc", "ABQ W4A4 (LWC + LET + compensation, MSE loss only)"),
    ABQ_W4A4_RTN("abq-w4a4-rtn", "W4A4 RTN (per-channel asymmetric weights, per-token asymmetric activations)"),
    ABQ_W2A8("abq-w2a8", "ABQ W2A8 (LWC + LET + compensation, distribution correction)"),
    ABQ_W2A8_NODC("abq-w2a8-nodc", "ABQ W2A8 (LWC + LET + compensation, MSE loss only)"),
    ABQ_W2A8_RTN("abq-w2a8-rtn", "W2A8 RTN (per-channel asymmetric weights, per-token asymmetric activations)"),
    ABQ_W2STAR_A8("abq-w2*a8", "ABQ W2*A8 bit balance (LWC + LET + compensation, distribution correction)"),
    ABQ_W2STAR_A8_NODC("abq-w2*a8-nodc", "ABQ W2*A8 bit balance (LWC + LET + compensation, MSE loss only)"),
    ABQ_W2STAR_A8_RTN("abq-w2*a8-rtn", "W2*A8 RTN (bit-balanced 5-level weights per channel, per-token asymmetric activations)"),
    // ABQ-LLM width attribution (which side of W6A6 costs what): round to nearest at one side's
    // 6 bits with the other side at 8, beside W8A8; same quantizers as the abq-*-rtn rows above.
    ABQ_W6A8_RTN("abq-w6a8-rtn", "W6A8 RTN (per-channel asymmetric weights, per-token asymmetric activations)"),
    ABQ_W8A6_RTN("abq-w8a6-rtn", "W8A6 RTN (per-channel asymmetric weights, per-token asymmetric activations)"),
    ABQ_W8A8_RTN("abq-w8a8-rtn", "W8A8 RTN (per-channel asymmetric weights, per-token asymmetric activations)"),
    // ABQ-LLM on FlatQuant's transforms (AbqQuantizer#quantizeFlat, lowbit.abq.AbqFlatScheme):
    // FlatQuant's Kronecker transforms, channel scales and clips calibrated at the given widths,
    // folded, then the layers on the bit-plane GEMM (TransformedAbqLinear). "-flat": FlatQuant's
    // symmetric per-channel weights and per-token activations (QuantScheme.w6a6()); "-flat-asym":
    // ABQ-LLM's asymmetric ones, in calibration and at inference.
    ABQ_W6A6_FLAT("abq-w6a6-flat", "ABQ W6A6 on FlatQuant transforms (symmetric W6 per channel, A6 per token; bit-plane GEMM)"),
    ABQ_W6A6_FLAT_ASYM("abq-w6a6-flat-asym", "ABQ W6A6 on FlatQuant transforms (asymmetric W6 per channel, A6 per token; bit-plane GEMM)"),
    // ... and the attribution of its loss: one side at 6 bits, the other at 8.
    ABQ_W6A8_FLAT("abq-w6a8-flat", "ABQ W6A8 on FlatQuant transforms (symmetric W6 per channel, A8 per token; bit-plane GEMM)"),
    ABQ_W8A6_FLAT("abq-w8a6-flat", "ABQ W8A6 on FlatQuant transforms (symmetric W8 per channel, A6 per token; bit-plane GEMM)"),
    // ... with GPTQ weight codes on the same learned-clip grid (Hessians from the calibration text's
    // layer inputs in the round-to-nearest model: AbqQuantizer#quantizeFlat).
    ABQ_W6A6_FLAT_GPTQ("abq-w6a6-flat-gptq", "ABQ W6A6 on FlatQuant transforms, GPTQ weights (symmetric W6 per channel, A6 per token; bit-plane GEMM)"),
    ABQ_W6A6_FLAT_ASYM_GPTQ("abq-w6a6-flat-asym-gptq", "ABQ W6A6 on FlatQuant transforms, GPTQ weights (asymmetric W6 per channel, A6 per token; bit-plane GEMM)"),
    /**
     * ABQ round to nearest at a width chosen per layer ({@link lowbit.abq.AbqWidthPolicy}): the
     * least measured bit-plane GEMM time within a per-layer error budget, errors measured on the
     * calibration sample ({@link AbqQuantizer#quantizeAuto}).
     */
    ABQ_AUTO("abq-auto", "ABQ mixed widths per layer (RTN; least measured bit-plane GEMM time within an error budget)"),
    /** INT4 weights (per channel, symmetric, round to nearest), INT4 activations with a dynamic symmetric scale per token; no smoothing. */
    W4A4_RTN("w4a4-rtn", "W4A4 RTN (per-channel INT4 weights, per-token INT4 activations)"),
    /**
     * SmoothQuant-style W4A4: per-channel smoothing {@code s = max|x|^0.5 / max|W|^0.5} (α = 0.5) from
     * the calibration statistics, folded into attn_norm / ffn_norm for q/k/v and gate/up, explicit
     * (an input scale of the layer) for attn_output and ffn_down; then {@link #W4A4_RTN}'s quantizers.
     */
    SMOOTHQUANT_W4A4("smoothquant-w4a4", "SmoothQuant W4A4 (alpha 0.5 smoothing, then RTN per-channel W4, per-token A4)"),
    // FlatQuant (FlatQuantQuantizer): learnable Kronecker transforms, per-channel scaling and
    // clipping calibrated block by block, folded offline; layers run FlatQuantLinear (online
    // transform, per-token symmetric activations, integer GEMM with per-channel symmetric weights).
    FLATQUANT_W4A4("flatquant-w4a4", "FlatQuant W4A4 KV16 (Kronecker transforms + scaling + clipping, RTN weights)"),
    FLATQUANT_W4A4_KV4("flatquant-w4a4-kv4", "FlatQuant W4A4 KV4 (K and V INT4 asymmetric per head, K transform after RoPE)"),
    FLATQUANT_W4A8("flatquant-w4a8", "FlatQuant W4A8 KV16 (Kronecker transforms + scaling + clipping, RTN weights)"),
    FLATQUANT_W8A8("flatquant-w8a8", "FlatQuant W8A8 KV16 (Kronecker transforms + scaling + clipping, RTN weights)"),
    // "-gptq": the same calibration, then the weights rounded by GPTQ on the learned clip's scales,
    // layer by layer on the quantized model's stream (the authors' --gptq rows).
    FLATQUANT_W4A4_GPTQ("flatquant-w4a4-gptq", "FlatQuant W4A4 KV16 (Kronecker transforms + scaling + clipping, GPTQ weights)"),
    FLATQUANT_W4A4_KV4_GPTQ("flatquant-w4a4-kv4-gptq", "FlatQuant W4A4 KV4 (K and V INT4 asymmetric per head, GPTQ weights)"),
    FLATQUANT_W4A8_GPTQ("flatquant-w4a8-gptq", "FlatQuant W4A8 KV16 (Kronecker transforms + scaling + clipping, GPTQ weights)");

    private final String id;
    private final String description;

    QuantMethod(String id, String description) {
        this.id = id;
        this.description = description;
    }

    /** The command-line name, e.g. {@code w8a8-flatten}. */
    public String id() {
        return id;
    }

    public String description() {
        return description;
    }

    /** True for the FlattenQuant methods that search smoothing, thresholds and clipping per layer. */
    public boolean searches() {
        return this == W8A8_FLATTEN || this == FLATTEN_MIXED;
    }

    /** True for the DGQ A8W4 methods. */
    public boolean isDgq() {
        return this == DGQ || this == DGQ_G64 || this == DGQ_G32 || this == DGQ_AUTHORS;
    }

    /** The DGQ settings of a DGQ method; throws for the others. */
    public DgqConfig dgqConfig() {
        switch (this) {
            case DGQ:
                return DgqConfig.defaults();
            case DGQ_G64:
                return DgqConfig.defaults().withGroup(64);
            case DGQ_G32:
                return DgqConfig.defaults().withGroup(32);
            case DGQ_AUTHORS:
                return DgqConfig.defaults().withActivations(ActivationMode.STATIC_PER_TENSOR).withSmoothing(0.995, 1.0);
            default:
                throw new IllegalStateException(id + " is not a DGQ method");
        }
    }

    /** True for the ABQ-LLM methods ({@link AbqQuantizer}). */
    public boolean isAbq() {
        return id.startsWith("abq-");
    }

    /** True for the ABQ-LLM methods that calibrate (not the {@code -rtn} ones, nor {@code abq-auto}). */
    public boolean abqCalibrates() {
        return isAbq() && !id.endsWith("-rtn") && this != ABQ_AUTO;
    }

    /** True for the ABQ-LLM methods on FlatQuant's transforms ({@code abq-WxAy-flat}, {@code -flat-asym}, each also {@code -gptq}). */
    public boolean isAbqFlat() {
        return isAbq() && id.contains("-flat");
    }

    /** The widths and quantizer symmetry of an {@link #isAbqFlat} method (throws for the others). */
    public lowbit.abq.AbqFlatScheme abqFlatScheme() {
        if (!isAbqFlat()) throw new IllegalStateException(id + " is not an ABQ method on FlatQuant transforms");
        String widths = id.substring("abq-".length(), id.indexOf("-flat"));
        String options = id.substring(id.indexOf("-flat") + "-flat".length());
        int w = Integer.parseInt(widths.substring(1, widths.indexOf('a')));
        int a = Integer.parseInt(widths.substring(widths.indexOf('a') + 1));
        return new lowbit.abq.AbqFlatScheme(w, a, options.contains("-asym"), options.contains("-gptq"));
    }

    /**
     * The ABQ-LLM settings of a fixed-width ABQ method (widths from the name; throws for the others
     * and for {@link #ABQ_AUTO}, whose widths differ per layer).
     */
    public AbqConfig abqConfig() {
        if (!isAbq()) throw new IllegalStateException(id + " is not an ABQ method");
        if (this == ABQ_AUTO) {
            throw new IllegalStateException(id + " chooses a width per layer (AbqWidthPolicy); it has no single ABQ config");
        }
        if (isAbqFlat()) throw new IllegalStateException(id + " calibrates FlatQuant transforms: see abqFlatScheme()");
        String widths = id.substring("abq-".length()).replace("-nodc", "").replace("-rtn", "");
        boolean balance = widths.startsWith("w2*");
        int w = Integer.parseInt(widths.substring(1, 2));
        int a = Integer.parseInt(widths.substring(widths.indexOf('a') + 1));
        if (!abqCalibrates()) return AbqConfig.roundToNearest(w, a, balance);
        return AbqConfig.authors(w, a, balance, !id.endsWith("-nodc"));
    }

    /** True for the FlatQuant methods ({@link FlatQuantQuantizer}). */
    public boolean isFlatQuant() {
        return id.startsWith("flatquant-");
    }

    /**
     * The FlatQuant quantizers of a FlatQuant method (throws for the others); KV4 uses groups of
     * {@code headDim} (one per head and token: 64 on SmolLM2; the authors' 128 is LLaMA's head size).
     */
    public lowbit.flatquant.QuantScheme flatQuantScheme(int headDim) {
        switch (this) {
            case FLATQUANT_W4A4:
            case FLATQUANT_W4A4_GPTQ:
                return lowbit.flatquant.QuantScheme.w4a4();
            case FLATQUANT_W4A4_KV4:
            case FLATQUANT_W4A4_KV4_GPTQ:
                return lowbit.flatquant.QuantScheme.w4a4kv4(headDim);
            case FLATQUANT_W4A8:
            case FLATQUANT_W4A8_GPTQ:
                return lowbit.flatquant.QuantScheme.w4a8();
            case FLATQUANT_W8A8:
                return lowbit.flatquant.QuantScheme.w8a8();
            default:
                throw new IllegalStateException(id + " is not a FlatQuant method");
        }
    }

    /** The method named {@code id} (case-insensitive); a clear exception lists the names otherwise. */
    public static QuantMethod parse(String id) {
        for (QuantMethod m : values()) {
            if (m.id.equalsIgnoreCase(id.trim()) || m.name().equalsIgnoreCase(id.trim())) return m;
        }
        throw new IllegalArgumentException("unknown method '" + id + "'; use one of "
                + Arrays.stream(values()).map(QuantMethod::id).collect(Collectors.joining(", ")));
    }

    @Override
    public String toString() {
        return id.toUpperCase(Locale.ROOT);
    }
}
