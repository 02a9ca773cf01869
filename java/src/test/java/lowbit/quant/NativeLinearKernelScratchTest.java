package lowbit.quant;

import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import lowbit.Backend;
import lowbit.Context;
import org.junit.jupiter.api.Test;

/** The native kernel's pooled scratch: reused per token count, bit-exact, safe under concurrent calls, freed on close. */
class NativeLinearKernelScratchTest {
    private static float[] gaussian(SplittableRandom r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    @Test
    void scratchIsReusedPerTokenCountAndStaysBitExactUnderConcurrency() throws Exception {
        SplittableRandom r = new SplittableRandom(5);
        int k = 96, n = 40;
        float[] w = gaussian(r, n * k);
        float[] bias = gaussian(r, n);
        for (QuantConfig.ActivationScale mode : QuantConfig.ActivationScale.values()) {
            QuantizedLinear java = QuantizedLinear.create(w, bias, n, k, FlattenPlan.ofCopies(copies(k)), 8, 8, true, null, mode, 4f);
            try (Context ctx = Context.open(Backend.CPU); QuantizedLinear nat = java.on(ctx)) {
                NativeLinearKernel kernel = (NativeLinearKernel) nat.kernel();
                int[] tokenCounts = {5, 5, 1, 5, 17, 1, 3, 2, 9};
                for (int tokens : tokenCounts) {
                    float[] x = gaussian(r, tokens * k);
                    float[] expected = new float[tokens * n], actual = new float[tokens * n];
                    java.forward(x, tokens, expected);
                    nat.forward(x, tokens, actual);
                    assertArrayEquals(expected, actual, 0f, mode + ", " + tokens + " tokens");
                    assertTrue(kernel.pooledScratch() <= NativeLinearKernel.POOL_SIZE);
                }
                assertEquals(NativeLinearKernel.POOL_SIZE, kernel.pooledScratch());

                ExecutorService pool = Executors.newFixedThreadPool(4);
                try {
                    List<Future<?>> done = new ArrayList<>();
                    for (int thread = 0; thread < 4; thread++) {
                        long seed = thread;
                        done.add(pool.submit(() -> {
                            SplittableRandom tr = new SplittableRandom(seed);
                            for (int i = 0; i < 60; i++) {
                                int tokens = 1 + tr.nextInt(3);
                                float[] x = gaussian(tr, tokens * k);
                                float[] expected = new float[tokens * n], actual = new float[tokens * n];
                                java.forward(x, tokens, expected);
                                nat.forward(x, tokens, actual);
                                assertArrayEquals(expected, actual, 0f);
                            }
                            return null;
                        }));
                    }
                    for (Future<?> f : done) f.get();
                } finally {
                    pool.shutdown();
                }
                assertTrue(kernel.pooledScratch() <= NativeLinearKernel.POOL_SIZE);
                nat.close();
                assertEquals(0, kernel.pooledScratch());
                assertThrows(IllegalStateException.class, () -> nat.forward(new float[k], 1, new float[n]));
            }
        }
    }

    private static int[] copies(int k) {
        int[] c = new int[k];
        java.util.Arrays.fill(c, 1);
        c[3] = 3;
        return c;
    }
}
