package lowbit.calibrate;

import java.util.stream.IntStream;

/**
 * Causal grouped-query softmax attention in two ops, so a loss can read the attention maps:
 * {@link #probabilities} ({@code softmax(q·kᵀ/√d)} with the causal mask, one {@code seqLen ×
 * seqLen} map per sequence and head) and {@link #apply} ({@code P·v}). Query head h reads KV head
 * {@code h / (heads/kvHeads)}. Rows of q, k, v are tokens of sequences of {@code seqLen} laid one
 * after another; the maps are stacked as rows {@code [(sequence·heads + h)·seqLen + i]}.
 * Work runs in parallel over (sequence, KV head); the query heads of a group run in order inside
 * one task, so the KV gradients are summed without races, deterministically.
 */
public final class CausalAttention {
    private CausalAttention() {}

    /**
     * The maps {@code P = softmax(q_h·k_gᵀ/√d)}, zero above the diagonal. Backward: {@code dS = P ⊙
     * (dP − rowsum(dP ⊙ P))}, {@code dq_h = dS·k_g/√d}, {@code dk_g += dSᵀ·q_h/√d}.
     */
    public static Var probabilities(Tape tape, Var q, Var k, int heads, int kvHeads, int headDim, int seqLen) {
        check(q, k, heads, kvHeads, headDim, seqLen);
        int seqs = q.rows / seqLen, group = heads / kvHeads;
        double scale = 1.0 / Math.sqrt(headDim);
        double[] p = new double[seqs * heads * seqLen * seqLen];
        IntStream.range(0, seqs * kvHeads).parallel().forEach(task -> {
            int s = task / kvHeads, g = task % kvHeads;
            double[] kt = Gemm.transpose(slice(k.value, k.cols, s, seqLen, g * headDim, headDim), seqLen, headDim);
            for (int h = g * group; h < (g + 1) * group; h++) {
                double[] qh = slice(q.value, q.cols, s, seqLen, h * headDim, headDim);
                double[] scores = new double[seqLen * seqLen];
                tape.gemmSerial(qh, kt, scores, seqLen, seqLen, headDim, false);
                int base = (s * heads + h) * seqLen * seqLen;
                for (int i = 0; i < seqLen; i++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) max = Math.max(max, scores[i * seqLen + j] * scale);
                    double sum = 0;
                    for (int j = 0; j <= i; j++) {
                        double e = Math.exp(scores[i * seqLen + j] * scale - max);
                        p[base + i * seqLen + j] = e;
                        sum += e;
                    }
                    for (int j = 0; j <= i; j++) p[base + i * seqLen + j] /= sum;
                }
            }
        });
        Var out = tape.result(p, seqs * heads * seqLen, seqLen, q, k);
        tape.onBackward(out, () -> {
            double[] dp = out.grad;
            double[] dq = q.requiresGrad ? q.gradArray() : null;
            double[] dk = k.requiresGrad ? k.gradArray() : null;
            IntStream.range(0, seqs * kvHeads).parallel().forEach(task -> {
                int s = task / kvHeads, g = task % kvHeads;
                double[] kg = slice(k.value, k.cols, s, seqLen, g * headDim, headDim);
                double[] dkg = new double[seqLen * headDim];
                for (int h = g * group; h < (g + 1) * group; h++) {
                    int base = (s * heads + h) * seqLen * seqLen;
                    double[] ds = new double[seqLen * seqLen];
                    for (int i = 0; i < seqLen; i++) {
                        double dot = 0;
                        for (int j = 0; j <= i; j++) dot += dp[base + i * seqLen + j] * p[base + i * seqLen + j];
                        for (int j = 0; j <= i; j++) ds[i * seqLen + j] = p[base + i * seqLen + j] * (dp[base + i * seqLen + j] - dot) * scale;
                    }
                    if (dq != null) {
                        double[] dqh = new double[seqLen * headDim];
                        tape.gemmSerial(ds, kg, dqh, seqLen, headDim, seqLen, false);
                        addSlice(dq, q.cols, s, seqLen, h * headDim, headDim, dqh);
                    }
                    if (dk != null) {
                        double[] qh = slice(q.value, q.cols, s, seqLen, h * headDim, headDim);
                        tape.gemmSerial(Gemm.transpose(ds, seqLen, seqLen), qh, dkg, seqLen, headDim, seqLen, true);
                    }
                }
                if (dk != null) addSlice(dk, k.cols, s, seqLen, g * headDim, headDim, dkg);
            });
        });
        return out;
    }

    /**
     * {@code out_h = P_h·v_g} ({@code tokens × heads·headDim}). Backward: {@code dP_h = dout_h·v_gᵀ},
     * {@code dv_g += P_hᵀ·dout_h}.
     */
    public static Var apply(Tape tape, Var p, Var v, int heads, int kvHeads, int headDim, int seqLen) {
        if (v.cols != kvHeads * headDim || v.rows % seqLen != 0) {
            throw new IllegalArgumentException("v is " + v.rows + "×" + v.cols + ", expected sequences of " + seqLen + " × " + kvHeads * headDim);
        }
        int seqs = v.rows / seqLen, group = heads / kvHeads, dim = heads * headDim;
        p.requireShape(seqs * heads * seqLen, seqLen, "attention maps");
        double[] y = new double[v.rows * dim];
        IntStream.range(0, seqs * kvHeads).parallel().forEach(task -> {
            int s = task / kvHeads, g = task % kvHeads;
            double[] vg = slice(v.value, v.cols, s, seqLen, g * headDim, headDim);
            for (int h = g * group; h < (g + 1) * group; h++) {
                double[] oh = new double[seqLen * headDim];
                tape.gemmSerial(map(p.value, s, h, heads, seqLen), vg, oh, seqLen, headDim, seqLen, false);
                addSlice(y, dim, s, seqLen, h * headDim, headDim, oh);
            }
        });
        Var out = tape.result(y, v.rows, dim, p, v);
        tape.onBackward(out, () -> {
            double[] dp = p.requiresGrad ? p.gradArray() : null;
            double[] dv = v.requiresGrad ? v.gradArray() : null;
            IntStream.range(0, seqs * kvHeads).parallel().forEach(task -> {
                int s = task / kvHeads, g = task % kvHeads;
                double[] vg = slice(v.value, v.cols, s, seqLen, g * headDim, headDim);
                double[] dvg = new double[seqLen * headDim];
                for (int h = g * group; h < (g + 1) * group; h++) {
                    double[] doh = slice(out.grad, dim, s, seqLen, h * headDim, headDim);
                    if (dp != null) {
                        double[] dph = new double[seqLen * seqLen];
                        tape.gemmSerial(doh, Gemm.transpose(vg, seqLen, headDim), dph, seqLen, seqLen, headDim, false);
                        int base = (s * heads + h) * seqLen * seqLen;
                        for (int i = 0; i < dph.length; i++) dp[base + i] += dph[i];
                    }
                    if (dv != null) {
                        tape.gemmSerial(Gemm.transpose(map(p.value, s, h, heads, seqLen), seqLen, seqLen), doh, dvg, seqLen, headDim, seqLen, true);
                    }
                }
                if (dv != null) addSlice(dv, v.cols, s, seqLen, g * headDim, headDim, dvg);
            });
        });
        return out;
    }

    private static void check(Var q, Var k, int heads, int kvHeads, int headDim, int seqLen) {
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0) throw new IllegalArgumentException(heads + " heads not divisible into " + kvHeads + " KV heads");
        if (seqLen < 1 || q.rows % seqLen != 0) throw new IllegalArgumentException(q.rows + " rows are not whole sequences of " + seqLen);
        q.requireShape(q.rows, heads * headDim, "q");
        k.requireShape(q.rows, kvHeads * headDim, "k");
    }

    /** Rows of sequence s, columns [col, col+width) of a matrix with {@code cols} columns. */
    private static double[] slice(double[] a, int cols, int s, int seqLen, int col, int width) {
        double[] out = new double[seqLen * width];
        for (int i = 0; i < seqLen; i++) System.arraycopy(a, (s * seqLen + i) * cols + col, out, i * width, width);
        return out;
    }

    private static void addSlice(double[] a, int cols, int s, int seqLen, int col, int width, double[] add) {
        for (int i = 0; i < seqLen; i++) {
            int o = (s * seqLen + i) * cols + col;
            for (int d = 0; d < width; d++) a[o + d] += add[i * width + d];
        }
    }

    private static double[] map(double[] p, int s, int h, int heads, int seqLen) {
        int base = (s * heads + h) * seqLen * seqLen;
        return java.util.Arrays.copyOfRange(p, base, base + seqLen * seqLen);
    }
}
