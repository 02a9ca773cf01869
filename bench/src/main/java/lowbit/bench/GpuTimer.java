package lowbit.bench;

import java.util.Arrays;
import lowbit.Context;

/**
 * Median time per launch of a GPU operation, launched back to back: a short warm-up estimates one
 * launch, then each of 7 batches runs enough launches to last about 3 ms (at least 10, at most
 * 5000) and ends with one synchronize; the median batch gives the time per launch. Small shapes
 * thus run thousands of launches back to back, so the per-batch synchronization costs under 1%.
 */
final class GpuTimer {
    private static final int BATCHES = 7;
    private static final double BATCH_SECONDS = 3e-3;

    private GpuTimer() {}

    /** Median seconds per launch; {@code op.accept(i)} runs launch number i (to rotate inputs). */
    static double time(Context ctx, java.util.function.IntConsumer op) {
        int launch = 0;
        for (int i = 0; i < 3; i++) {
            op.accept(launch++);
        }
        ctx.synchronize();
        long t0 = System.nanoTime();
        for (int i = 0; i < 5; i++) {
            op.accept(launch++);
        }
        ctx.synchronize();
        double estimate = (System.nanoTime() - t0) / 1e9 / 5;
        int perBatch = (int) Math.max(10, Math.min(5000, BATCH_SECONDS / Math.max(estimate, 1e-7)));
        double[] perLaunch = new double[BATCHES];
        for (int b = 0; b < BATCHES; b++) {
            long s = System.nanoTime();
            for (int i = 0; i < perBatch; i++) {
                op.accept(launch++);
            }
            ctx.synchronize();
            perLaunch[b] = (System.nanoTime() - s) / 1e9 / perBatch;
        }
        Arrays.sort(perLaunch);
        return perLaunch[BATCHES / 2];
    }
}
