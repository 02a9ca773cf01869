package lowbit.model;

import java.io.IOException;
import lowbit.io.HfCheckpoint;

/**
 * A straightforward FP64 OPT forward pass following Hugging Face's {@code OPTDecoder} (learned
 * positions at index position + 2, q scaled by head_dim^-½ after its bias, ReLU MLP, pre- or
 * post-norm LayerNorms, final LayerNorm only with pre-norm, tied LM head), with no KV cache and
 * full causal attention; written independently of {@link OptModel} for tests.
 */
final class OptReference {
    private OptReference() {}

    static double[] logits(HfCheckpoint hf, String prefix, int dim, int ffn, int heads, int vocab, int maxPositions, int blocks,
                           boolean preNorm, int[] tokens) throws IOException {
        int n = tokens.length, hd = dim / heads;
        double[][] emb = LlamaReference.matrix(hf, prefix + "embed_tokens.weight", vocab, dim);
        double[][] pos = LlamaReference.matrix(hf, prefix + "embed_positions.weight", maxPositions + 2, dim);
        double[][] x = new double[n][dim];
        for (int t = 0; t < n; t++) for (int i = 0; i < dim; i++) x[t][i] = emb[tokens[t]][i] + pos[t + 2][i];
        for (int l = 0; l < blocks; l++) {
            String p = prefix + "layers." + l + ".";
            double[][] q = new double[n][], k = new double[n][], v = new double[n][];
            double[][] residual = new double[n][];
            for (int t = 0; t < n; t++) {
                residual[t] = x[t].clone();
                double[] h = preNorm ? layerNorm(hf, p + "self_attn_layer_norm", x[t]) : x[t];
                q[t] = linear(hf, p + "self_attn.q_proj", dim, dim, h);
                for (int i = 0; i < dim; i++) q[t][i] *= Math.pow(hd, -0.5);
                k[t] = linear(hf, p + "self_attn.k_proj", dim, dim, h);
                v[t] = linear(hf, p + "self_attn.v_proj", dim, dim, h);
            }
            for (int t = 0; t < n; t++) {
                double[] att = new double[dim];
                for (int h = 0; h < heads; h++) {
                    double[] w = new double[t + 1];
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j <= t; j++) {
                        for (int i = 0; i < hd; i++) w[j] += q[t][h * hd + i] * k[j][h * hd + i];
                        max = Math.max(max, w[j]);
                    }
                    for (int j = 0; j <= t; j++) sum += w[j] = Math.exp(w[j] - max);
                    for (int j = 0; j <= t; j++) for (int i = 0; i < hd; i++) att[h * hd + i] += w[j] / sum * v[j][h * hd + i];
                }
                double[] o = linear(hf, p + "self_attn.out_proj", dim, dim, att);
                for (int i = 0; i < dim; i++) x[t][i] = residual[t][i] + o[i];
                if (!preNorm) x[t] = layerNorm(hf, p + "self_attn_layer_norm", x[t]);
            }
            for (int t = 0; t < n; t++) {
                double[] r = x[t].clone();
                double[] h = preNorm ? layerNorm(hf, p + "final_layer_norm", x[t]) : x[t];
                double[] up = linear(hf, p + "fc1", ffn, dim, h);
                for (int i = 0; i < ffn; i++) up[i] = Math.max(0, up[i]);
                double[] down = linear(hf, p + "fc2", dim, ffn, up);
                for (int i = 0; i < dim; i++) x[t][i] = r[i] + down[i];
                if (!preNorm) x[t] = layerNorm(hf, p + "final_layer_norm", x[t]);
            }
        }
        double[] out = new double[n * vocab];
        for (int t = 0; t < n; t++) {
            double[] h = preNorm ? layerNorm(hf, prefix + "final_layer_norm", x[t]) : x[t];
            System.arraycopy(LlamaReference.apply(emb, h), 0, out, t * vocab, vocab);
        }
        return out;
    }

    private static double[] linear(HfCheckpoint hf, String name, int out, int in, double[] x) throws IOException {
        double[] y = LlamaReference.apply(LlamaReference.matrix(hf, name + ".weight", out, in), x);
        double[] b = LlamaReference.vector(hf, name + ".bias", out);
        for (int i = 0; i < out; i++) y[i] += b[i];
        return y;
    }

    private static double[] layerNorm(HfCheckpoint hf, String name, double[] x) throws IOException {
        double[] g = LlamaReference.vector(hf, name + ".weight", x.length);
        double[] b = LlamaReference.vector(hf, name + ".bias", x.length);
        double mean = 0, var = 0;
        for (double v : x) mean += v / x.length;
        for (double v : x) var += (v - mean) * (v - mean) / x.length;
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = (x[i] - mean) / Math.sqrt(var + 1e-5) * g[i] + b[i];
        return y;
    }
}
