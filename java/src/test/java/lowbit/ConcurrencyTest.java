package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** Several threads use one context (and their own contexts) at once; every result stays exact. */
class ConcurrencyTest {
    @Test
    void threadsShareOneContext() throws Exception {
        int m = 23;
        int n = 71;
        int k = 333;
        Random rnd = new Random(5);
        int[] a = KernelChecks.randomInts(rnd, m, k, 8, true);
        int[] b = KernelChecks.randomInts(rnd, n, k, 4, true);
        long[] want = Reference.gemm(a, b, m, n, k);
        int[] wantInt = new int[want.length];
        for (int i = 0; i < want.length; i++) {
            wantInt[i] = (int) want[i];
        }
        ExecutorService pool = Executors.newFixedThreadPool(6);
        try (Context shared = Context.open(Backend.CPU);
                Tensor ta = KernelChecks.uploadInts(shared, a, m, k, DType.S8);
                Tensor tb = KernelChecks.uploadInts(shared, b, n, k, DType.S4)) {
            List<Future<?>> jobs = new ArrayList<>();
            for (int t = 0; t < 6; t++) {
                final int id = t;
                jobs.add(pool.submit(() -> {
                    for (int iter = 0; iter < 40; iter++) {
                        if (id % 2 == 0) {
                            try (Tensor c = shared.gemm(ta, tb)) {
                                assertArrayEquals(wantInt, c.toIntArray());
                            }
                        } else {
                            try (Context own = Context.open(Backend.CPU);
                                    Tensor x = own.upload(KernelChecks.activations(new Random(iter), 9, 130), 9, 130);
                                    QuantizedTensor q = own.quantize(x, 4, Granularity.PER_ROW)) {
                                q.values().toByteArray();
                            }
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : jobs) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
