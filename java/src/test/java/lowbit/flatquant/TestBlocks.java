package lowbit.flatquant;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Param;
import lowbit.calibrate.RotaryEmbedding;
import lowbit.model.LlamaConfig;
import lowbit.model.LlamaModel;

/** Small random LLaMA blocks and randomized FlatQuant parameters for the tests. */
final class TestBlocks {
    private TestBlocks() {}

    /** A block of {@code config} with random weights (std 0.3), RMSNorm weights in [0.6, 1.4], biases on {@code biased}. */
    static LlamaBlock block(LlamaConfig c, Random rnd, List<String> biased) {
        int d = c.dim(), kv = c.kvDim(), f = c.ffnDim();
        int[][] shapes = {{d, d}, {kv, d}, {kv, d}, {d, d}, {f, d}, {f, d}, {d, f}};
        Map<String, double[]> w = new LinkedHashMap<>(), b = new LinkedHashMap<>();
        for (int i = 0; i < shapes.length; i++) {
            String name = LlamaModel.BLOCK_LINEARS.get(i);
            w.put(name, gaussian(rnd, shapes[i][0] * shapes[i][1], 0.3));
            if (biased.contains(name)) b.put(name, gaussian(rnd, shapes[i][0], 0.1));
        }
        return new LlamaBlock(c, RotaryEmbedding.of(c, null), positive(rnd, d), positive(rnd, d), w, b);
    }

    /** Moves every parameter away from its start: σ and scales into [0.5, 1.5], Cayley and clip logits by Gaussian noise. */
    static void randomize(BlockTransforms t, Random rnd) {
        for (Param p : t.params()) {
            double[] v = p.values();
            for (int i = 0; i < v.length; i++) {
                if (p.name().endsWith("sigma") || p.name().endsWith("scale")) v[i] = 0.5 + rnd.nextDouble();
                else if (p.name().endsWith("clip")) v[i] = 1.5 + 0.3 * rnd.nextGaussian();
                else v[i] += 0.3 * rnd.nextGaussian();
            }
            p.set(v);
        }
    }

    static double[] gaussian(Random rnd, int n, double std) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = rnd.nextGaussian() * std;
        return v;
    }

    static double[] positive(Random rnd, int n) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = 0.6 + 0.8 * rnd.nextDouble();
        return v;
    }

    static double relativeError(double[] got, double[] ref) {
        double err = 0, norm = 0;
        for (int i = 0; i < ref.length; i++) {
            err += (got[i] - ref[i]) * (got[i] - ref[i]);
            norm += ref[i] * ref[i];
        }
        return Math.sqrt(err / norm);
    }
}
