package lowbit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import lowbit.abq.AbqWidth;
import lowbit.abq.BitPlaneGemmTimer;
import lowbit.abq.WidthMeasurement;
import org.junit.jupiter.api.Test;

/**
 * abq-auto's measurements on CUDA: each candidate's error equals the CPU backend's (the bit-plane
 * GEMM is bit-exact on both, so the errors are the same doubles), and the timer measures on the
 * device (synchronized), caches per shape and gives finite positive medians. Timing values are not
 * asserted. Skipped, visibly, without a CUDA device.
 */
class AbqWidthCudaTest extends GpuTestBase {
    @Test
    void errorsEqualTheCpuBackendsAndTheTimerRunsOnTheDevice() {
        int n = 300, k = 1100, tokens = 37;
        Random rnd = new Random(4);
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (0.05 * rnd.nextGaussian());
        float[] x = new float[tokens * k];
        for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * (i % k == 9 ? 40 : 1));
        List<AbqWidth> ws = AbqWidth.parseList(List.of("W8A8,W6A6,W4A8,W4A4,W3A8,W2*A8,W2A8"));
        assertArrayEquals(WidthMeasurement.errors(cpu, "l", w, n, k, x, tokens, ws), WidthMeasurement.errors(gpu, "l", w, n, k, x, tokens, ws), 0.0);
        BitPlaneGemmTimer timer = new BitPlaneGemmTimer(gpu, 5);
        double[][] t = timer.seconds(4096, 4096, ws, List.of(1, 512));
        for (int i = 0; i < ws.size(); i++) {
            for (double s : t[i]) assertTrue(s > 0 && s < 1, ws.get(i) + ": " + s + " s");
            System.out.printf("4096 x 4096 %s: M=1 %.1f us, M=512 %.1f us%n", ws.get(i), 1e6 * t[i][0], 1e6 * t[i][1]);
        }
        assertEquals(ws.size() * 2, timer.measurements());
        assertEquals(t[2][1], timer.seconds(4096, 4096, ws.get(2), 512));
        assertEquals(ws.size() * 2, timer.measurements());
    }
}
