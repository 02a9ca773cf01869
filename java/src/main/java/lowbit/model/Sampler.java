package lowbit.model;

import java.util.Arrays;
import java.util.Random;

/**
 * Picks the next token from logits: greedily (argmax), or by seeded sampling with temperature,
 * top-k (keep the k most likely tokens) and top-p (keep the smallest set whose probability reaches
 * p). The same seed and logits give the same tokens.
 */
public final class Sampler {
    private final int topK;
    private final float topP;
    private final float temperature;
    private final Random random;

    private Sampler(int topK, float topP, float temperature, Random random) {
        this.topK = topK;
        this.topP = topP;
        this.temperature = temperature;
        this.random = random;
    }

    /** Always the most likely token (ties: the lowest id). */
    public static Sampler greedy() {
        return new Sampler(1, 1f, 1f, null);
    }

    /**
     * Seeded sampling. {@code topK <= 0} disables top-k, {@code topP >= 1} disables top-p; {@code
     * temperature} must be positive.
     */
    public static Sampler topKTopP(int topK, float topP, float temperature, long seed) {
        if (!(temperature > 0)) throw new IllegalArgumentException("temperature must be positive: " + temperature);
        if (!(topP > 0)) throw new IllegalArgumentException("topP must be positive: " + topP);
        return new Sampler(topK, topP, temperature, new Random(seed));
    }

    public int sample(float[] logits) {
        if (random == null) return argmax(logits);
        Integer[] order = new Integer[logits.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> logits[a] != logits[b] ? Float.compare(logits[b], logits[a]) : Integer.compare(a, b));
        int keep = topK > 0 ? Math.min(topK, logits.length) : logits.length;
        double max = logits[order[0]];
        double[] p = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) {
            p[i] = Math.exp((logits[order[i]] - max) / temperature);
            sum += p[i];
        }
        int cut = keep;
        if (topP < 1f) {
            double cumulative = 0;
            for (int i = 0; i < keep; i++) {
                cumulative += p[i] / sum;
                if (cumulative >= topP) {
                    cut = i + 1;
                    break;
                }
            }
        }
        double total = 0;
        for (int i = 0; i < cut; i++) total += p[i];
        double r = random.nextDouble() * total;
        for (int i = 0; i < cut; i++) {
            r -= p[i];
            if (r < 0) return order[i];
        }
        return order[cut - 1];
    }

    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
