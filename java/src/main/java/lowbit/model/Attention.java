package lowbit.model;

import java.util.stream.IntStream;

/**
 * Causal grouped-query attention over a {@link KvCache}: query head h reads KV head {@code h /
 * (heads / kvHeads)}. Each (head, block of query tokens) pair is an independent parallel task.
 */
final class Attention {
    private static final int QUERY_BLOCK = 16;

    private Attention() {}

    /**
     * {@code out[t]} for query rows {@code q[t]} (already rotated) at positions {@code firstPos + t},
     * attending to cache positions {@code 0 .. firstPos + t} of {@code layer}.
     */
    static void compute(LlamaConfig c, KvCache cache, int layer, float[] q, int tokens, int firstPos, float[] out) {
        int heads = c.headCount();
        int blocks = (tokens + QUERY_BLOCK - 1) / QUERY_BLOCK;
        IntStream.range(0, heads * blocks).parallel().forEach(task -> {
            int h = task % heads;
            int t0 = (task / heads) * QUERY_BLOCK;
            int t1 = Math.min(tokens, t0 + QUERY_BLOCK);
            float[] scores = new float[firstPos + t1];
            for (int t = t0; t < t1; t++) head(c, cache, layer, q, t, h, firstPos + t, scores, out);
        });
    }

    private static void head(LlamaConfig c, KvCache cache, int layer, float[] q, int t, int h, int pos, float[] scores, float[] out) {
        int hd = c.headDim();
        int kvDim = c.kvDim();
        int kvHead = h / (c.headCount() / c.kvHeadCount());
        int qOff = t * c.dim() + h * hd;
        float[] keys = cache.keys[layer];
        float[] values = cache.values[layer];
        float scale = (float) (1.0 / Math.sqrt(hd));
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j <= pos; j++) {
            float s = MatMul.dot(q, qOff, keys, j * kvDim + kvHead * hd, hd) * scale;
            scores[j] = s;
            if (s > max) max = s;
        }
        float sum = 0;
        for (int j = 0; j <= pos; j++) {
            float e = (float) Math.exp(scores[j] - max);
            scores[j] = e;
            sum += e;
        }
        float inv = 1f / sum;
        int oOff = t * c.dim() + h * hd;
        java.util.Arrays.fill(out, oOff, oOff + hd, 0f);
        for (int j = 0; j <= pos; j++) {
            float a = scores[j] * inv;
            int vOff = j * kvDim + kvHead * hd;
            for (int d = 0; d < hd; d++) out[oOff + d] += a * values[vOff + d];
        }
    }
}
