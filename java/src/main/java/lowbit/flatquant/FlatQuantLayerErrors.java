package lowbit.flatquant;

import java.util.LinkedHashMap;
import java.util.Map;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Site;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;
import lowbit.model.LinearOp;

/**
 * The per-layer error a FlatQuant report row carries, measured as the other methods' rows are: the
 * relative output error {@code Σ(y_q − y_fp)² / Σ(y_fp − b)²} of the quantized layer against the FP
 * layer, on inputs the FP model produced. A FlatQuant layer reads its input in the folded model's
 * coordinates, so each FP input is first mapped through the offline fold (exactly, in FP64): the
 * channel scale is divided out at q/k/v ({@code x ⊘ s_qkv}), gate/up ({@code x ⊘ s_up}) and down
 * ({@code x ⊘ s_down}); attn_output reads the attention output with Pv on every head ({@code o·(I ⊗
 * Pv)}, the values carry it). The online transform, the learned clips and the integer GEMM are then
 * the layer's own; {@code y_fp} is the unfolded FP64 product with the original weight and bias, for
 * attn_v and ffn_up mapped to the folded output coordinates ({@code y_fp·(I ⊗ Pv)} and {@code y_fp ⊘
 * s_down}: Pv and the down input's scale are folded into their rows).
 */
public final class FlatQuantLayerErrors {
    private FlatQuantLayerErrors() {}

    /**
     * Errors by short layer name ({@code attn_q}, ...) of {@code quantized}'s layers (built from {@code
     * block} and {@code transforms}), on {@code tokens} rows of the FP inputs by site ({@link Site#ATTN_IN},
     * {@link Site#ATTN_OUT_IN}, {@link Site#FFN_IN}, {@link Site#FFN_DOWN_IN}; a missing site gives NaN).
     */
    public static Map<String, Double> measure(LlamaBlock block, BlockTransforms transforms, FlatQuantBlock quantized,
                                              Map<Site, float[]> fpInputs, int tokens) {
        Map<Site, float[]> mapped = new LinkedHashMap<>();
        for (Map.Entry<Site, float[]> e : fpInputs.entrySet()) mapped.put(e.getKey(), toFolded(e.getKey(), e.getValue(), tokens, block, transforms));
        Map<String, Double> errors = new LinkedHashMap<>();
        for (String l : block.linears()) {
            Site site = Site.inputOf(l);
            float[] x = fpInputs.get(site);
            LinearOp q = quantized.layers().get(l);
            if (x == null || tokens < 1 || q == null) {
                errors.put(l, Double.NaN);
                continue;
            }
            Var w = block.weight(l), b = block.bias(l);
            int n = w.rows(), k = w.cols();
            float[] y = new float[tokens * n];
            q.forward(mapped.get(site), tokens, y);
            double[] wv = w.value();
            double[] pv = l.equals("attn_v") ? t(transforms.v) : null;
            double[] down = l.equals("ffn_up") ? transforms.downScale.param().values() : null;
            int hd = block.config().headDim();
            double num = 0, den = 0;
            double[] ref = new double[n], bias = new double[n];
            for (int r = 0; r < n; r++) bias[r] = b == null ? 0 : b.value()[r];
            if (pv != null) bias = perHead(bias, pv, hd);
            if (down != null) bias = divide(bias, down);
            for (int t = 0; t < tokens; t++) {
                for (int r = 0; r < n; r++) {
                    double s = 0;
                    for (int c = 0; c < k; c++) s += (double) x[t * k + c] * wv[r * k + c];
                    ref[r] = s;
                }
                double[] yRef = pv != null ? perHead(ref, pv, hd) : down != null ? divide(ref, down) : ref;
                for (int r = 0; r < n; r++) {
                    double d = y[t * n + r] - (yRef[r] + bias[r]);
                    num += d * d;
                    den += yRef[r] * yRef[r];
                }
            }
            errors.put(l, den == 0 ? (num == 0 ? 0 : Double.POSITIVE_INFINITY) : num / den);
        }
        return errors;
    }

    private static double[] divide(double[] v, double[] s) {
        double[] y = new double[v.length];
        for (int i = 0; i < v.length; i++) y[i] = v[i] / s[i];
        return y;
    }

    /** {@code Pv} in FP64. */
    private static double[] t(lowbit.calibrate.AffineFactor f) {
        return f.matrixAndInverseTranspose(Tape.fp64())[0].value();
    }

    /** Every head row of {@code v} times {@code p} ({@code hd × hd}). */
    private static double[] perHead(double[] v, double[] p, int hd) {
        double[] y = new double[v.length];
        for (int h = 0; h < v.length / hd; h++) {
            for (int j = 0; j < hd; j++) {
                double s = 0;
                for (int i = 0; i < hd; i++) s += v[h * hd + i] * p[i * hd + j];
                y[h * hd + j] = s;
            }
        }
        return y;
    }

    /** The FP input of {@code site} as the folded model's layer reads it. */
    private static float[] toFolded(Site site, float[] x, int tokens, LlamaBlock block, BlockTransforms t) {
        switch (site) {
            case ATTN_IN:
                return divide(x, tokens, t.qkvScale.param().values());
            case FFN_IN:
                return divide(x, tokens, t.upScale.param().values());
            case FFN_DOWN_IN:
                return divide(x, tokens, t.downScale.param().values());
            case ATTN_OUT_IN: {
                int hd = block.config().headDim(), heads = block.config().headCount(), k = heads * hd;
                double[] pv = t.v.matrixAndInverseTranspose(Tape.fp64())[0].value();
                float[] y = new float[tokens * k];
                for (int r = 0; r < tokens * heads; r++) {
                    for (int j = 0; j < hd; j++) {
                        double s = 0;
                        for (int i = 0; i < hd; i++) s += x[r * hd + i] * pv[i * hd + j];
                        y[r * hd + j] = (float) s;
                    }
                }
                return y;
            }
            default:
                throw new IllegalArgumentException("no linear layer reads " + site);
        }
    }

    private static float[] divide(float[] x, int tokens, double[] s) {
        int k = s.length;
        float[] y = new float[tokens * k];
        for (int i = 0; i < y.length; i++) y[i] = (float) (x[i] / s[i % k]);
        return y;
    }
}
