package lowbit.model;

import java.io.IOException;
import lowbit.io.HfCheckpoint;

/**
 * A straightforward FP64 LLaMA forward pass in Hugging Face's conventions (rotate-half RoPE, HF
 * tensor names, no KV cache, full causal attention), written independently of {@link LlamaModel}
 * for tests. Returns the logits of every position.
 */
final class LlamaReference {
    private LlamaReference() {}

    static double[] logits(HfCheckpoint hf, LlamaConfig c, int[] tokens) throws IOException {
        int n = tokens.length, d = c.dim(), hd = c.headDim(), heads = c.headCount(), kvHeads = c.kvHeadCount();
        double[][] x = new double[n][];
        double[][] emb = matrix(hf, "model.embed_tokens.weight", c.vocabSize(), d);
        for (int t = 0; t < n; t++) x[t] = emb[tokens[t]].clone();
        for (int l = 0; l < c.blockCount(); l++) {
            String p = "model.layers." + l + ".";
            double[] g1 = vector(hf, p + "input_layernorm.weight", d);
            double[][] wq = matrix(hf, p + "self_attn.q_proj.weight", d, d);
            double[][] wk = matrix(hf, p + "self_attn.k_proj.weight", c.kvDim(), d);
            double[][] wv = matrix(hf, p + "self_attn.v_proj.weight", c.kvDim(), d);
            double[][] wo = matrix(hf, p + "self_attn.o_proj.weight", d, d);
            double[][] q = new double[n][], k = new double[n][], v = new double[n][];
            for (int t = 0; t < n; t++) {
                double[] h = rmsNorm(x[t], g1, c.rmsEps());
                q[t] = rotateHalf(apply(wq, h), heads, hd, t, c.ropeFreqBase());
                k[t] = rotateHalf(apply(wk, h), kvHeads, hd, t, c.ropeFreqBase());
                v[t] = apply(wv, h);
            }
            for (int t = 0; t < n; t++) {
                double[] att = new double[d];
                for (int h = 0; h < heads; h++) {
                    int kh = h / (heads / kvHeads);
                    double[] s = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= t; j++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) dot += q[t][h * hd + i] * k[j][kh * hd + i];
                        s[j] = dot / Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= t; j++) sum += s[j] = Math.exp(s[j] - max);
                    for (int j = 0; j <= t; j++) {
                        for (int i = 0; i < hd; i++) att[h * hd + i] += s[j] / sum * v[j][kh * hd + i];
                    }
                }
                double[] o = apply(wo, att);
                for (int i = 0; i < d; i++) x[t][i] += o[i];
            }
            double[] g2 = vector(hf, p + "post_attention_layernorm.weight", d);
            double[][] wg = matrix(hf, p + "mlp.gate_proj.weight", c.ffnDim(), d);
            double[][] wu = matrix(hf, p + "mlp.up_proj.weight", c.ffnDim(), d);
            double[][] wd = matrix(hf, p + "mlp.down_proj.weight", d, c.ffnDim());
            for (int t = 0; t < n; t++) {
                double[] h = rmsNorm(x[t], g2, c.rmsEps());
                double[] gate = apply(wg, h), up = apply(wu, h);
                for (int i = 0; i < gate.length; i++) gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
                double[] down = apply(wd, gate);
                for (int i = 0; i < d; i++) x[t][i] += down[i];
            }
        }
        double[] gn = vector(hf, "model.norm.weight", d);
        double[][] head = hf.hasTensor("lm_head.weight") ? matrix(hf, "lm_head.weight", c.vocabSize(), d) : emb;
        double[] out = new double[n * c.vocabSize()];
        for (int t = 0; t < n; t++) System.arraycopy(apply(head, rmsNorm(x[t], gn, c.rmsEps())), 0, out, t * c.vocabSize(), c.vocabSize());
        return out;
    }

    /** HF's rotate_half: within each head, dimension i pairs with i + hd/2, angle pos · base^(-2i/hd). */
    private static double[] rotateHalf(double[] x, int heads, int hd, int pos, double base) {
        double[] y = x.clone();
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < hd / 2; i++) {
                double angle = pos * Math.pow(base, -2.0 * i / hd);
                double a = x[h * hd + i], b = x[h * hd + i + hd / 2];
                y[h * hd + i] = a * Math.cos(angle) - b * Math.sin(angle);
                y[h * hd + i + hd / 2] = b * Math.cos(angle) + a * Math.sin(angle);
            }
        }
        return y;
    }

    private static double[] rmsNorm(double[] x, double[] g, double eps) {
        double ss = 0;
        for (double v : x) ss += v * v;
        double s = 1 / Math.sqrt(ss / x.length + eps);
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = x[i] * s * g[i];
        return y;
    }

    static double[] apply(double[][] w, double[] x) {
        double[] y = new double[w.length];
        for (int r = 0; r < w.length; r++) {
            double s = 0;
            for (int i = 0; i < x.length; i++) s += w[r][i] * x[i];
            y[r] = s;
        }
        return y;
    }

    static double[][] matrix(HfCheckpoint hf, String name, int rows, int cols) throws IOException {
        float[] f = hf.readFloats(name, rows, cols);
        double[][] m = new double[rows][cols];
        for (int r = 0; r < rows; r++) for (int i = 0; i < cols; i++) m[r][i] = f[r * cols + i];
        return m;
    }

    static double[] vector(HfCheckpoint hf, String name, int n) throws IOException {
        float[] f = hf.readFloats(name, n);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = f[i];
        return v;
    }
}
