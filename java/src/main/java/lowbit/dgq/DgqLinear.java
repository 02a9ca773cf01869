package lowbit.dgq;

import java.util.Objects;
import lowbit.Context;
import lowbit.DType;
import lowbit.DgqWeights;
import lowbit.Granularity;
import lowbit.LayerScratch;
import lowbit.QuantizedTensor;
import lowbit.ScratchPool;
import lowbit.Tensor;
import lowbit.model.LinearOp;
import lowbit.quant.CalibrationStats;

/**
 * A DGQ A8W4 linear layer on a native context (the CPU backend): {@code y = x·Wᵀ (+ b)} computed as
 * smooth ({@code x'[t][j] = x[t][j]·(1/s_j)} in float32), quantize x' to INT8 (per token or with the
 * static per-tensor scale, {@code lowbit_quantize}), then {@code lowbit_gemm_dgq} on the
 * device-resident DGQ weights (quantized from {@code W·diag(s)}). {@link #simulate} computes the same
 * in Java, bit for bit (F32 output). {@link #forward} may run concurrently from several threads.
 */
public final class DgqLinear implements LinearOp {
    private final Context ctx;
    private final DgqQuantizedWeights quantized;
    private final DgqWeights weights;
    private final float[] bias;
    private final Tensor biasTensor;
    private final float[] inverseSmoothing;
    private final ActivationMode mode;
    private final float staticScale;
    private final int inFeatures;
    private final ScratchPool<LayerScratch> scratch;

    private DgqLinear(Context ctx, DgqQuantizedWeights quantized, int inFeatures, float[] bias, float[] inverseSmoothing,
                      ActivationMode mode, float staticScale) {
        this.ctx = Objects.requireNonNull(ctx, "ctx");
        this.quantized = Objects.requireNonNull(quantized, "quantized");
        this.mode = Objects.requireNonNull(mode, "mode");
        int n = quantized.rows(), k = inFeatures;
        if (k < 1 || k > quantized.cols() || quantized.cols() - k >= quantized.group()) {
            throw new IllegalArgumentException("a DGQ layer of K=" + k + " needs weights of K rounded up to a multiple of G="
                    + quantized.group() + ", got " + quantized.cols() + " columns");
        }
        this.inFeatures = k;
        if (bias != null && bias.length != n) throw new IllegalArgumentException("bias needs " + n + " values, got " + bias.length);
        if (inverseSmoothing != null && inverseSmoothing.length != k) {
            throw new IllegalArgumentException("smoothing needs " + k + " factors, got " + inverseSmoothing.length);
        }
        if (mode == ActivationMode.STATIC_PER_TENSOR && !(staticScale > 0 && Float.isFinite(staticScale))) {
            throw new IllegalArgumentException("a static activation scale must be finite and > 0, got " + staticScale);
        }
        this.bias = bias == null ? null : bias.clone();
        this.inverseSmoothing = inverseSmoothing == null ? null : inverseSmoothing.clone();
        this.staticScale = staticScale;
        DgqWeights w = quantized.upload(ctx);
        try {
            this.biasTensor = bias == null ? null : ctx.upload(bias, 1, n);
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
        this.weights = w;
        this.scratch = new ScratchPool<>(4, t -> new LayerScratch(ctx, t, quantized.cols(), quantized.rows(), this::allocateActivations));
    }

    /**
     * Quantizes an FP layer ({@code w}: {@code n × k}, {@code bias} null or {@code n}) with DGQ:
     * smoothing factors from {@code stats} ({@link PercentileSmoothing}), the two-phase search on up to
     * {@code cfg.searchTokens()} of the stats' sampled tokens, and the static activation scale {@code
     * max_j(m_j/s_j)/127} when the config asks for one.
     */
    public static DgqLinear create(Context ctx, float[] w, float[] bias, int n, int k, CalibrationStats stats, DgqConfig cfg) {
        Objects.requireNonNull(stats, "stats");
        Objects.requireNonNull(cfg, "cfg");
        float[] s = Double.isNaN(cfg.smoothingPercentile()) ? null
                : PercentileSmoothing.factors(stats, cfg.smoothingPercentile(), cfg.tokenQuantile());
        return create(ctx, w, bias, n, k, stats, s, false, cfg);
    }

    /**
     * Quantizes an FP layer with given smoothing factors {@code s} (null: none; {@code cfg}'s
     * smoothing percentile is not consulted). When G does not divide K, the last group holds the
     * remaining {@code K mod G} columns: the weights are stored and executed as {@code K_pad = ⌈K/G⌉·G}
     * columns whose padding is zero in W (so {@code q = z}, {@code W8 = 0}) and in every input row. {@code foldedIntoInput} false: {@code w} is the
     * original weight, the layer multiplies its columns by {@code s} before quantizing and divides
     * its input by {@code s} at run time (explicit smoothing). True: {@code s} is already folded
     * into the producer of the input (a normalization weight divided by {@code s}) and into {@code
     * w} ({@code W·diag(s)}), so the layer reads {@code x/s} and applies nothing; {@code stats} are
     * those of the unsmoothed input {@code x} in both cases. The search runs on up to {@code
     * cfg.searchTokens()} of the stats' sampled tokens divided by {@code s}; the static scale is
     * {@code max_j(m_j/s_j)/127}.
     */
    public static DgqLinear create(Context ctx, float[] w, float[] bias, int n, int k, CalibrationStats stats, float[] s,
                                   boolean foldedIntoInput, DgqConfig cfg) {
        Objects.requireNonNull(stats, "stats");
        Objects.requireNonNull(cfg, "cfg");
        if (stats.channels() != k) {
            throw new IllegalArgumentException("stats of '" + stats.layer() + "' have " + stats.channels()
                    + " channels, the layer has K=" + k);
        }
        if (w.length != (long) n * k) throw new IllegalArgumentException("weights must hold " + n + " x " + k + " values");
        if (s != null && s.length != k) throw new IllegalArgumentException("smoothing needs " + k + " factors, got " + s.length);
        float[] inv = null;
        float[] ws = w;
        if (s != null) {
            inv = new float[k];
            for (int j = 0; j < k; j++) {
                if (!(s[j] > 0 && Float.isFinite(s[j]))) {
                    throw new IllegalArgumentException("smoothing factor " + j + " must be finite and > 0, got " + s[j]);
                }
                inv[j] = 1f / s[j];
            }
            if (!foldedIntoInput) {
                ws = new float[w.length];
                for (int i = 0; i < w.length; i++) ws[i] = w[i] * s[i % k];
            }
        }
        int tokens = Math.min(cfg.searchTokens(), stats.sampleSize());
        float[] sample = stats.sample();
        int kp = (k + cfg.group() - 1) / cfg.group() * cfg.group();
        if (kp != k) {
            float[] padded = new float[n * kp];
            for (int r = 0; r < n; r++) System.arraycopy(ws, r * k, padded, r * kp, k);
            ws = padded;
        }
        float[] xs = new float[tokens * kp];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < k; j++) xs[t * kp + j] = inv == null ? sample[t * k + j] : sample[t * k + j] * inv[j];
        }
        DgqQuantizedWeights q = DgqWeightQuantizer.quantize(ws, n, kp, xs, tokens, cfg);
        float scale = 1f;
        if (cfg.activations() == ActivationMode.STATIC_PER_TENSOR) {
            float[] m = stats.channelAbsMax();
            float amax = 0f;
            for (int j = 0; j < k; j++) amax = Math.max(amax, inv == null ? m[j] : m[j] * inv[j]);
            scale = Int8Activations.scale(amax);
        }
        return new DgqLinear(ctx, q, k, bias, foldedIntoInput ? null : inv, cfg.activations(), scale);
    }

    /** A layer from already-quantized weights; {@code inverseSmoothing} (1/s per input channel) may be null. */
    public static DgqLinear of(Context ctx, DgqQuantizedWeights weights, float[] bias, float[] inverseSmoothing,
                               ActivationMode mode, float staticScale) {
        return new DgqLinear(ctx, weights, weights.cols(), bias, inverseSmoothing, mode, staticScale);
    }

    /**
     * A layer of {@code inFeatures} inputs from already-quantized weights whose column count is
     * {@code inFeatures} rounded up to a multiple of G (see {@link #create}: the columns past K are
     * padding the input never reaches).
     */
    public static DgqLinear of(Context ctx, DgqQuantizedWeights weights, int inFeatures, float[] bias, float[] inverseSmoothing,
                               ActivationMode mode, float staticScale) {
        return new DgqLinear(ctx, weights, inFeatures, bias, inverseSmoothing, mode, staticScale);
    }

    @Override
    public int inFeatures() {
        return inFeatures;
    }

    @Override
    public int outFeatures() {
        return quantized.rows();
    }

    public DgqQuantizedWeights weights() {
        return quantized;
    }

    public ActivationMode activationMode() {
        return mode;
    }

    /** The bias (a copy), or null. */
    public float[] bias() {
        return bias == null ? null : bias.clone();
    }

    /** The explicit inverse smoothing factors {@code 1/s} applied to the input (a copy), or null when none. */
    public float[] inverseSmoothing() {
        return inverseSmoothing == null ? null : inverseSmoothing.clone();
    }

    /** The static per-tensor activation scale (1 in per-token mode, where it is unused). */
    public float staticScale() {
        return staticScale;
    }

    /** The input times {@code 1/s} (when smoothing is explicit), {@code tokens × K_pad} with zero padding columns. */
    private float[] smoothed(float[] x, int tokens) {
        int k = inFeatures, kp = quantized.cols();
        if (tokens < 1 || x.length < (long) tokens * k) {
            throw new IllegalArgumentException("x needs " + (long) tokens * k + " values for " + tokens + " tokens, got " + x.length);
        }
        float[] xs = new float[tokens * kp];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < k; j++) {
                xs[t * kp + j] = inverseSmoothing == null ? x[t * k + j] : x[t * k + j] * inverseSmoothing[j];
            }
        }
        return xs;
    }

    /** INT8 activations for {@code tokens} rows: per-token scales, or the static scale written once. */
    private QuantizedTensor allocateActivations(int tokens) {
        QuantizedTensor q = ctx.allocateQuantized(tokens, quantized.cols(), 8,
                mode == ActivationMode.PER_TOKEN ? Granularity.PER_ROW : Granularity.PER_TENSOR, 0);
        try {
            if (mode == ActivationMode.STATIC_PER_TENSOR) q.scales().copyFrom(new float[] {staticScale});
            return q;
        } catch (RuntimeException e) {
            q.close();
            throw e;
        }
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        int n = outFeatures(), k = quantized.cols();
        if (y.length < (long) tokens * n) throw new IllegalArgumentException("y needs " + (long) tokens * n + " values");
        float[] xs = smoothed(x, tokens);  // tokens x K_pad
        LayerScratch sc = scratch.take(tokens);
        boolean ok = false;
        try {
            sc.x.copyFrom(xs);
            if (mode == ActivationMode.STATIC_PER_TENSOR) ctx.quantizeWithScales(sc.x, sc.qa);
            else ctx.quantizeInto(sc.x, sc.qa);
            ctx.gemmDgqInto(sc.qa, weights, biasTensor, sc.out);
            if (y.length == (long) tokens * n) {
                sc.out.copyTo(y);
            } else {
                System.arraycopy(sc.out.toFloatArray(), 0, y, 0, tokens * n);
            }
            ok = true;
        } finally {
            if (ok) scratch.give(sc);
            else sc.close();
        }
    }

    /**
     * The Java simulation of {@link #forward}: the same smoothing, {@code lowbit.h}'s INT8
     * quantization, the exact integer sum {@code Σ_c q_x·W8} and the epilogue {@code ((float)acc·a_s)·s8
     * (+ b)}; equal to {@link #forward}'s output bit for bit.
     */
    public float[] simulate(float[] x, int tokens) {
        int n = outFeatures(), k = quantized.cols();
        float[] xs = smoothed(x, tokens);
        Int8Activations.Quantized qa = mode == ActivationMode.PER_TOKEN ? Int8Activations.perToken(xs, tokens, k)
                : Int8Activations.perTensor(xs, tokens, k, staticScale);
        int[] w8 = new int[n * k];
        for (int j = 0; j < n; j++) {
            for (int c = 0; c < k; c++) w8[j * k + c] = quantized.w8(j, c);
        }
        float[] y = new float[tokens * n];
        for (int t = 0; t < tokens; t++) {
            float as = qa.scales()[qa.scales().length == 1 ? 0 : t];
            for (int j = 0; j < n; j++) {
                int acc = 0;
                for (int c = 0; c < k; c++) acc += qa.q()[t * k + c] * w8[j * k + c];
                float v = (float) acc * as;
                v = v * quantized.channelScale(j);
                y[t * n + j] = bias == null ? v : v + bias[j];
            }
        }
        return y;
    }

    @Override
    public void close() {
        scratch.close();
        weights.close();
        if (biasTensor != null) biasTensor.close();
    }
}
