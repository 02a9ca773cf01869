package lowbit.abq;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import lowbit.calibrate.ClipFactors;
import lowbit.calibrate.LlamaBlock;

/**
 * One calibrated LLaMA block with everything foldable folded into full-precision weights, in FP64
 * ({@link AbqParameters} names the scales):
 *
 * <pre>
 *   attn_norm ← g / s_qkv                   attn_q, attn_k ← W ⊙ s_qkv (columns)
 *   attn_v    ← (W ⊙ s_qkv) ⊘ s_out (rows)    attn_output ← W ⊙ repeat(s_out) (columns)
 *   ffn_norm  ← g / s_fc1                   ffn_gate ← W ⊙ s_fc1
 *   ffn_up    ← (W ⊙ s_fc1) ⊘ s_fc2 (rows)    ffn_down ← W ⊙ s_fc2 + a·bᵀ
 * </pre>
 *
 * RMSNorm is {@code g ⊙ x / rms(x)}, so dividing g by s divides the normalized activation by s
 * exactly; SiLU(gate) ⊙ up is linear in up, so dividing up's rows divides ffn_down's input; the
 * attention output is linear in v. Without quantization the folded block therefore computes what
 * the calibration graph computes ({@code AbqFoldTest}, FP64). What cannot be folded is the weight
 * quantizer's clipping: {@link #clipFactors} keeps σ(γ), σ(β) per output channel for {@link
 * ClippedWeightQuantizer}.
 */
public final class AbqFold {
    private final double[] attnNorm;
    private final double[] ffnNorm;
    private final Map<String, double[]> weights;
    private final Map<String, double[]> clipFactors;

    private AbqFold(double[] attnNorm, double[] ffnNorm, Map<String, double[]> weights, Map<String, double[]> clipFactors) {
        this.attnNorm = attnNorm;
        this.ffnNorm = ffnNorm;
        this.weights = Collections.unmodifiableMap(weights);
        this.clipFactors = Collections.unmodifiableMap(clipFactors);
    }

    /**
     * Folds the parameters a calibration run saved for block {@code index} ({@code saved}: name →
     * values, e.g. {@code CalibrationResult.params()}) into {@code block}'s weights. With nothing
     * learned ({@code config.learns()} false) it is the block's own weights.
     */
    public static AbqFold of(int index, int blockCount, LlamaBlock block, AbqConfig config, Map<String, double[]> saved) {
        return of(block, AbqParameters.restore(index, blockCount, block, config, saved));
    }

    static AbqFold of(LlamaBlock block, AbqParameters p) {
        Map<String, double[]> w = new LinkedHashMap<>();
        for (String l : block.linears()) w.put(l, block.weight(l).value().clone());
        double[] attnNorm = block.attnNorm().value().clone(), ffnNorm = block.ffnNorm().value().clone();
        if (p.qkv != null) {
            double[] s = foldable(p.qkv.param().values(), "let.qkv");
            divide(attnNorm, s);
            for (String l : List.of("attn_q", "attn_k", "attn_v")) scaleColumns(w.get(l), s);
        }
        if (p.out != null) {
            double[] s = foldable(p.out.param().values(), "let.out");
            divideRows(w.get("attn_v"), s);
            double[] e = AbqMethod.kvExpansion(block);
            int cols = block.weight("attn_output").cols();
            double[] rep = new double[cols];
            for (int r = 0; r < s.length; r++) {
                for (int c = 0; c < cols; c++) rep[c] += s[r] * e[r * cols + c];
            }
            scaleColumns(w.get("attn_output"), rep);
        }
        if (p.fc1 != null) {
            double[] s = foldable(p.fc1.param().values(), "let.fc1");
            divide(ffnNorm, s);
            for (String l : List.of("ffn_gate", "ffn_up")) scaleColumns(w.get(l), s);
        }
        if (p.fc2 != null) {
            double[] s = foldable(p.fc2.param().values(), "let.fc2");
            divideRows(w.get("ffn_up"), s);
            scaleColumns(w.get("ffn_down"), s);
        }
        if (p.compensation != null) {
            double[] a = p.compensation.left().values(), b = p.compensation.right().values(), d = w.get("ffn_down");
            for (int r = 0; r < a.length; r++) {
                for (int c = 0; c < b.length; c++) d[r * b.length + c] += a[r] * b[c];
            }
        }
        Map<String, double[]> clips = new LinkedHashMap<>();
        for (Map.Entry<String, ClipFactors> e : p.clips.entrySet()) clips.put(e.getKey(), e.getValue().factors());
        return new AbqFold(attnNorm, ffnNorm, w, clips);
    }

    /** The RMSNorm weight before attention, smoothing folded in. */
    public double[] attnNorm() {
        return attnNorm.clone();
    }

    /** The RMSNorm weight before the feed-forward network, smoothing folded in. */
    public double[] ffnNorm() {
        return ffnNorm.clone();
    }

    /** The folded weight ({@code [out][in]}) of a linear layer. */
    public double[] weight(String linear) {
        double[] w = weights.get(linear);
        if (w == null) throw new IllegalArgumentException("no linear layer " + linear + " in " + weights.keySet());
        return w.clone();
    }

    /** The clip factors ({@code out × 2}: σ(γ) for the maximum, σ(β) for the minimum) of a layer, or null without LWC. */
    public double[] clipFactors(String linear) {
        double[] c = clipFactors.get(linear);
        return c == null ? null : c.clone();
    }

    /** A smoothing scale must be finite and non-zero to be divided by (a negative one only flips a channel, which folds exactly). */
    private static double[] foldable(double[] s, String what) {
        for (int i = 0; i < s.length; i++) {
            if (!Double.isFinite(s[i]) || s[i] == 0) throw new IllegalArgumentException(what + " scale " + i + " is " + s[i] + ": cannot fold");
        }
        return s;
    }

    private static void divide(double[] g, double[] s) {
        for (int i = 0; i < g.length; i++) g[i] /= s[i];
    }

    private static void scaleColumns(double[] w, double[] s) {
        for (int i = 0; i < w.length; i++) w[i] *= s[i % s.length];
    }

    private static void divideRows(double[] w, double[] s) {
        int cols = w.length / s.length;
        for (int i = 0; i < w.length; i++) w[i] /= s[i / cols];
    }
}
