package lowbit.model;

import java.util.stream.IntStream;

/**
 * Causal grouped-query attention over a {@link KvCache}: query head h reads KV head {@code h /
 * (heads / kvHeads)}. Each (head, block of query tokens) pair is an independent task, run in
 * parallel when the work is large enough to pay for it. Both products are multiply-adds over whole
 * arrays from index 0 ({@code scores[j] += q_d · K_d[j]} over positions j with the cache's
 * transposed keys, {@code acc[d] += p_j · V_j[d]} over dimensions d): the loop form C2 vectorizes.
 */
final class Attention {
    private static final int QUERY_BLOCK = 16;
    /** Below this many multiply-adds a call runs on the calling thread (decode with a short context). */
    private static final long PARALLEL_WORK = 1 << 17;

    private Attention() {}

    /**
     * {@code out[t]} for query rows {@code q[t]} (already rotated; passed through the cache's
     * {@link KvCache.Codec#queries} when it has a codec) at positions {@code firstPos + t},
     * attending to cache positions {@code 0 .. firstPos + t} of {@code layer}.
     */
    static void compute(int heads, int kvHeads, int headDim, KvCache cache, int layer, float[] queries, int tokens, int firstPos, float[] out) {
        KvCache.Codec codec = cache.codec();
        float[] q = codec == null ? queries : java.util.Arrays.copyOf(queries, tokens * heads * headDim);
        if (codec != null) codec.queries(layer, q, tokens);
        int blocks = (tokens + QUERY_BLOCK - 1) / QUERY_BLOCK;
        int tasks = heads * blocks;
        long work = (long) heads * tokens * (firstPos + tokens) * headDim;
        // a packed cache dequantizes the layer's positions once here, for every head and query block
        float[][] keys = cache.keysForAttention(layer, firstPos + tokens);
        float[][] values = cache.valuesForAttention(layer, firstPos + tokens);
        if (work < PARALLEL_WORK || tasks == 1) {
            for (int task = 0; task < tasks; task++) block(heads, kvHeads, headDim, keys, values, q, tokens, firstPos, out, task, blocks);
        } else {
            IntStream.range(0, tasks).parallel().forEach(task -> block(heads, kvHeads, headDim, keys, values, q, tokens, firstPos, out, task, blocks));
        }
    }

    private static void block(int heads, int kvHeads, int hd, float[][] keys, float[][] values, float[] q, int tokens, int firstPos, float[] out,
                              int task, int blocks) {
        int h = task / blocks;
        int t0 = (task % blocks) * QUERY_BLOCK;
        int t1 = Math.min(tokens, t0 + QUERY_BLOCK);
        int kvHead = h / (heads / kvHeads);
        int rowLength = heads * hd;
        float[] acc = new float[hd];
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] scores = new float[firstPos + t1];
        for (int t = t0; t < t1; t++) {
            int len = firstPos + t + 1;
            int qOff = t * rowLength + h * hd;
            java.util.Arrays.fill(scores, 0, len, 0f);
            for (int d = 0; d < hd; d++) axpy(scores, q[qOff + d] * scale, keys[kvHead * hd + d], len);
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < len; j++) max = Math.max(max, scores[j]);
            float sum = 0;
            for (int j = 0; j < len; j++) {
                float e = FastExp.exp(scores[j] - max);
                scores[j] = e;
                sum += e;
            }
            float inv = 1f / sum;
            java.util.Arrays.fill(acc, 0f);
            for (int j = 0; j < len; j++) axpy(acc, scores[j] * inv, values[j * kvHeads + kvHead], hd);
            System.arraycopy(acc, 0, out, t * rowLength + h * hd, hd);
        }
    }

    /** {@code y[i] += a · x[i]} for {@code i < n}: both arrays from index 0, so C2 vectorizes it. */
    private static void axpy(float[] y, float a, float[] x, int n) {
        for (int i = 0; i < n; i++) y[i] += a * x[i];
    }
}
