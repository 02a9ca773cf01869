package lowbit.dgq;

import java.util.Objects;
import lowbit.Context;
import lowbit.DType;
import lowbit.DgqWeights;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
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

    private DgqLinear(Context ctx, DgqQuantizedWeights quantized, float[] bias, float[] inverseSmoothing,
                      ActivationMode mode, float staticScale) {
        this.ctx = Objects.requireNonNull(ctx, "ctx");
        this.quantized = Objects.requireNonNull(quantized, "quantized");
        this.mode = Objects.requireNonNull(mode, "mode");
        int n = quantized.rows(), k = quantized.cols();
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
        if (stats.channels() != k) {
            throw new IllegalArgumentException("stats of '" + stats.layer() + "' have " + stats.channels()
                    + " channels, the layer has K=" + k);
        }
        if (w.length != (long) n * k) throw new IllegalArgumentException("weights must hold " + n + " x " + k + " values");
        float[] s = Double.isNaN(cfg.smoothingPercentile()) ? null
                : PercentileSmoothing.factors(stats, cfg.smoothingPercentile(), cfg.tokenQuantile());
        float[] inv = null;
        float[] ws = w;
        if (s != null) {
            inv = new float[k];
            for (int j = 0; j < k; j++) inv[j] = 1f / s[j];
            ws = new float[w.length];
            for (int i = 0; i < w.length; i++) ws[i] = w[i] * s[i % k];
        }
        int tokens = Math.min(cfg.searchTokens(), stats.sampleSize());
        float[] sample = stats.sample();
        float[] xs = new float[tokens * k];
        for (int i = 0; i < xs.length; i++) xs[i] = inv == null ? sample[i] : sample[i] * inv[i % k];
        DgqQuantizedWeights q = DgqWeightQuantizer.quantize(ws, n, k, xs, tokens, cfg);
        float scale = 1f;
        if (cfg.activations() == ActivationMode.STATIC_PER_TENSOR) {
            float[] m = stats.channelAbsMax();
            float amax = 0f;
            for (int j = 0; j < k; j++) amax = Math.max(amax, inv == null ? m[j] : m[j] * inv[j]);
            scale = Int8Activations.scale(amax);
        }
        return new DgqLinear(ctx, q, bias, inv, cfg.activations(), scale);
    }

    /** A layer from already-quantized weights; {@code inverseSmoothing} (1/s per input channel) may be null. */
    public static DgqLinear of(Context ctx, DgqQuantizedWeights weights, float[] bias, float[] inverseSmoothing,
                               ActivationMode mode, float staticScale) {
        return new DgqLinear(ctx, weights, bias, inverseSmoothing, mode, staticScale);
    }

    @Override
    public int inFeatures() {
        return quantized.cols();
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

    /** The static per-tensor activation scale (1 in per-token mode, where it is unused). */
    public float staticScale() {
        return staticScale;
    }

    private float[] smoothed(float[] x, int tokens) {
        int k = inFeatures();
        if (tokens < 1 || x.length < (long) tokens * k) {
            throw new IllegalArgumentException("x needs " + (long) tokens * k + " values for " + tokens + " tokens, got " + x.length);
        }
        float[] xs = new float[tokens * k];
        for (int i = 0; i < xs.length; i++) xs[i] = inverseSmoothing == null ? x[i] : x[i] * inverseSmoothing[i % k];
        return xs;
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        int n = outFeatures(), k = inFeatures();
        if (y.length < (long) tokens * n) throw new IllegalArgumentException("y needs " + (long) tokens * n + " values");
        float[] xs = smoothed(x, tokens);
        try (Tensor xt = ctx.upload(xs, tokens, k);
             QuantizedTensor qa = mode == ActivationMode.PER_TOKEN ? ctx.quantize(xt, 8, Granularity.PER_ROW)
                     : ctx.allocateQuantized(tokens, k, 8, Granularity.PER_TENSOR, 0);
             Tensor out = ctx.allocate(DType.F32, tokens, n)) {
            if (mode == ActivationMode.STATIC_PER_TENSOR) {
                qa.scales().copyFrom(new float[] {staticScale});
                ctx.quantizeWithScales(xt, qa);
            }
            ctx.gemmDgqInto(qa, weights, biasTensor, out);
            System.arraycopy(out.toFloatArray(), 0, y, 0, tokens * n);
        }
    }

    /**
     * The Java simulation of {@link #forward}: the same smoothing, {@code lowbit.h}'s INT8
     * quantization, the exact integer sum {@code Σ_c q_x·W8} and the epilogue {@code ((float)acc·a_s)·s8
     * (+ b)}; equal to {@link #forward}'s output bit for bit.
     */
    public float[] simulate(float[] x, int tokens) {
        int n = outFeatures(), k = inFeatures();
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
        weights.close();
        if (biasTensor != null) biasTensor.close();
    }
}
