package lowbit.model;

import static org.junit.jupiter.api.Assertions.*;

import java.util.Random;
import org.junit.jupiter.api.Test;

class MatMulTest {
    private static float[] random(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    @Test
    void matchesNaiveProductOnOddShapes() {
        Random r = new Random(7);
        int[][] shapes = {{1, 1, 1}, {3, 5, 7}, {130, 67, 9}, {65, 200, 1}, {2, 33, 131}};
        for (int[] s : shapes) {
            int n = s[0], k = s[1], t = s[2];
            float[] w = random(r, n * k), x = random(r, t * k), bias = random(r, n);
            float[] y = new float[t * n];
            new FloatLinear(w, bias, n, k).forward(x, t, y);
            for (int tok = 0; tok < t; tok++) {
                for (int row = 0; row < n; row++) {
                    double expected = bias[row];
                    for (int i = 0; i < k; i++) expected += (double) w[row * k + i] * x[tok * k + i];
                    assertEquals(expected, y[tok * n + row], 1e-4 * Math.sqrt(k), "n=" + n + " k=" + k + " t=" + t);
                }
            }
        }
    }

    @Test
    void rejectsWrongShapes() {
        assertThrows(IllegalArgumentException.class, () -> new FloatLinear(new float[6], null, 4, 2));
        FloatLinear op = new FloatLinear(new float[6], null, 3, 2);
        assertThrows(IllegalArgumentException.class, () -> op.forward(new float[3], 2, new float[6]));
    }
}
