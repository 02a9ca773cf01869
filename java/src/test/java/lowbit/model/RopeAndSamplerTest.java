package lowbit.model;

import static org.junit.jupiter.api.Assertions.*;

import java.util.Random;
import org.junit.jupiter.api.Test;

class RopeAndSamplerTest {
    private static final LlamaConfig TINY = new LlamaConfig(1, 8, 16, 2, 1, 4, 4, 10000.0, 1.0, 1e-5f, 64, 10);

    private static float dot(float[] a, float[] b) {
        float s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    @Test
    void ropeRotatesAdjacentPairsAndDependsOnlyOnRelativePosition() {
        Rope rope = new Rope(TINY, null);
        float[] x = {1, 0, 0, 1};
        rope.apply(x, 1, 1, 1);
        // pair 0 rotates by 1 rad, pair 1 by 1·10000^(-2/4) = 0.01 rad
        assertArrayEquals(new float[] {(float) Math.cos(1), (float) Math.sin(1), (float) -Math.sin(0.01), (float) Math.cos(0.01)}, x, 1e-6f);
        Random r = new Random(3);
        float[] q = new float[4], k = new float[4];
        for (int i = 0; i < 4; i++) {
            q[i] = (float) r.nextGaussian();
            k[i] = (float) r.nextGaussian();
        }
        float[] q5 = q.clone(), k2 = k.clone(), q13 = q.clone(), k10 = k.clone();
        rope.apply(q5, 1, 1, 5);
        rope.apply(k2, 1, 1, 2);
        rope.apply(q13, 1, 1, 13);
        rope.apply(k10, 1, 1, 10);
        assertEquals(dot(q5, k2), dot(q13, k10), 1e-5f);
        assertEquals(dot(q, q), dot(q5, q5), 1e-5f);
        assertThrows(IllegalArgumentException.class, () -> rope.apply(new float[4], 1, 1, 64));
    }

    @Test
    void greedyAndSeededSampling() {
        float[] logits = {0.1f, 3f, 2.9f, -1f, 2.95f};
        assertEquals(1, Sampler.greedy().sample(logits));
        assertEquals(1, Sampler.topKTopP(1, 1f, 1f, 42).sample(logits));
        Sampler a = Sampler.topKTopP(3, 0.95f, 0.8f, 123), b = Sampler.topKTopP(3, 0.95f, 0.8f, 123);
        int[] counts = new int[5];
        for (int i = 0; i < 300; i++) {
            int x = a.sample(logits);
            assertEquals(x, b.sample(logits), "same seed, same tokens");
            counts[x]++;
        }
        assertEquals(0, counts[0] + counts[3], "top-k 3 never picks tokens 0 or 3");
        assertTrue(counts[1] > 50 && counts[2] > 50 && counts[4] > 50, java.util.Arrays.toString(counts));
        // top-p small enough keeps only the best token
        Sampler p = Sampler.topKTopP(0, 0.01f, 1f, 9);
        for (int i = 0; i < 20; i++) assertEquals(1, p.sample(logits));
    }
}
