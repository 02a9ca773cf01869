package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import lowbit.Backend;
import lowbit.Context;
import org.junit.jupiter.api.Test;

/**
 * {@link FlatQuantLinear} on the native CPU backend against its Java simulation (bit for bit, the
 * integer part and the float output), the online transform against the dense Kronecker product in
 * FP64, the whole layer against the unquantized FP64 product at 8 bits, and its refusals.
 */
class FlatQuantLinearTest {
    private final Random rnd = new Random(17);

    @Test
    void onlineTransformIsTheDenseKroneckerProduct() {
        int n1 = 3, n2 = 7, n = n1 * n2, tokens = 5;
        double[] p1 = TestBlocks.gaussian(rnd, n1 * n1, 1), p2 = TestBlocks.gaussian(rnd, n2 * n2, 1);
        float[] x = floats(rnd, tokens * n, 1);
        float[] got = new OnlineTransform(p1, n1, p2, n2).apply(x, tokens);
        // dense (P1 ⊗ P2)[i·n2 + j][a·n2 + b] = P1[i][a]·P2[j][b], in FP64 from the float32-rounded factors
        double[] kron = new double[n * n];
        for (int i = 0; i < n1; i++) for (int j = 0; j < n2; j++) for (int a = 0; a < n1; a++) for (int b = 0; b < n2; b++) {
            kron[(i * n2 + j) * n + a * n2 + b] = (double) (float) p1[i * n1 + a] * (float) p2[j * n2 + b];
        }
        for (int t = 0; t < tokens; t++) {
            for (int c = 0; c < n; c++) {
                double ref = 0, mag = 0;
                for (int r = 0; r < n; r++) {
                    ref += x[t * n + r] * kron[r * n + c];
                    mag += Math.abs(x[t * n + r] * kron[r * n + c]);
                }
                assertEquals(ref, got[t * n + c], 1e-6 * mag, "token " + t + " column " + c);
            }
        }
        // identity factors: P1 ⊗ I and I ⊗ I
        float[] leftOnly = new OnlineTransform(p1, n1, null, n2).apply(x, tokens);
        float[] none = new OnlineTransform(null, n1, null, n2).apply(x, tokens);
        assertArrayEquals(Arrays.copyOf(x, tokens * n), none);
        for (int a = 0; a < n1; a++) {
            double ref = 0;
            for (int i = 0; i < n1; i++) ref += x[i * n2 + 2] * (float) p1[i * n1 + a];
            assertEquals(ref, leftOnly[a * n2 + 2], 1e-5);
        }
    }

    @Test
    void nativeLayerEqualsItsSimulationBitForBit() {
        try (Context ctx = Context.open(Backend.CPU)) {
            for (int[] widths : new int[][] {{4, 4}, {4, 8}, {8, 8}}) {
                for (int[] shape : new int[][] {{3, 7, 11, 9}, {4, 6, 13, 1}, {5, 5, 8, 33}}) {
                    int n1 = shape[0], n2 = shape[1], k = n1 * n2, n = shape[2], tokens = shape[3];
                    try (FlatQuantLinear layer = randomLayer(ctx, n1, n2, n, widths[0], widths[1], true)) {
                        float[] x = floats(rnd, tokens * k, 2);
                        x[3] *= 40; // an outlier channel value
                        float[] y = new float[tokens * n];
                        Arrays.fill(y, Float.NaN); // poisoned: every element must be written
                        layer.forward(x, tokens, y);
                        float[] sim = layer.simulate(x, tokens);
                        String what = "W" + widths[0] + "A" + widths[1] + " " + k + "x" + n + " tokens " + tokens;
                        for (int i = 0; i < y.length; i++) {
                            assertEquals(Float.floatToIntBits(sim[i]), Float.floatToIntBits(y[i]), what + " element " + i + ": " + y[i] + " vs " + sim[i]);
                        }
                        int[] acc = layer.accumulators(x, tokens);
                        long[] ref = layer.simulateAccumulators(x, tokens);
                        assertEquals(ref.length, acc.length, what);
                        for (int i = 0; i < acc.length; i++) assertEquals(ref[i], acc[i], what + " accumulator " + i);
                        assertTrue(Arrays.stream(ref).anyMatch(v -> v != 0), what + ": all-zero accumulators make the check vacuous");
                    }
                }
            }
        }
    }

    /**
     * The fused native transform + quantize ({@code lowbit_kron_quantize}) against the Java reference
     * ({@link OnlineTransform}'s fixed-order FMA chains, {@link TokenQuantizer}): codes and scales bit
     * for bit, on the scalar and the best CPU ISA, for SmolLM2's transform sizes (24 x 24 before
     * q/k/v and gate/up, 32 x 48 before down, Po ⊗ I = 9 x 64 before attn_output), odd sizes, one-sided
     * identities, 4 and 8 bits, learned clips; then the whole layer's output bit for bit.
     */
    @Test
    void fusedNativeTransformEqualsTheJavaReferenceBitForBit() {
        int[][] factors = {{24, 24}, {32, 48}, {9, 64}, {3, 7}, {7, 3}, {5, 5}, {9, 13}, {1, 7}, {11, 1}, {128, 2}};
        for (lowbit.CpuIsa isa : new lowbit.CpuIsa[] {lowbit.CpuIsa.SCALAR, lowbit.Lowbit.cpuIsaBest()}) {
            try (Context ctx = Context.open(Backend.CPU)) {
                ctx.setCpuIsa(isa);
                for (int[] f : factors) {
                    int n1 = f[0], n2 = f[1], k = n1 * n2;
                    for (int bits : new int[] {4, 8}) {
                        for (int identity = 0; identity < 3; identity++) { // 0: dense P1 ⊗ P2, 1: P1 ⊗ I, 2: I ⊗ P2
                            double[] p1 = identity == 2 ? null : invertible(n1), p2 = identity == 1 ? null : invertible(n2);
                            int n = 5, tokens = 1 + rnd.nextInt(12);
                            ClippedWeights w = ClippedWeights.quantize(TestBlocks.gaussian(rnd, n * k, 0.4), n, k, bits == 8 ? 8 : 4, null);
                            OnlineTransform t = new OnlineTransform(p1, n1, p2, n2);
                            String what = isa + " " + n1 + "x" + n2 + " A" + bits + " identity " + identity + " tokens " + tokens;
                            try (FlatQuantLinear layer = FlatQuantLinear.of(ctx, w, floats(rnd, n, 0.1), new TokenQuantizer(bits, 0.85, 0.95), t)) {
                                assertTrue(layer.usesFusedTransform(), what);
                                float[] x = floats(rnd, tokens * k, 1.5);
                                x[rnd.nextInt(x.length)] *= 30; // an outlier
                                FlatQuantLinear.ActivationCodes got = layer.nativeCodes(x, tokens), want = layer.simulateCodes(x, tokens);
                                assertArrayEquals(want.scales(), got.scales(), what + ": scales");
                                assertArrayEquals(want.codes(), got.codes(), what + ": codes");
                                assertTrue(Arrays.stream(want.codes()).anyMatch(c -> Math.abs(c) > 1), what + ": codes must not be trivial");
                                float[] y = new float[tokens * n];
                                Arrays.fill(y, Float.NaN);
                                layer.forward(x, tokens, y);
                                float[] sim = layer.simulate(x, tokens);
                                for (int i = 0; i < y.length; i++) {
                                    assertEquals(Float.floatToIntBits(sim[i]), Float.floatToIntBits(y[i]), what + " output " + i);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /** A factor above the kernel's limit (129) and a layer without transform take the Java transform and still equal the reference. */
    @Test
    void layersTheKernelCannotTakeUseTheJavaTransform() {
        try (Context ctx = Context.open(Backend.CPU)) {
            int n1 = 129, n2 = 2, k = n1 * n2, n = 3, tokens = 4;
            ClippedWeights w = ClippedWeights.quantize(TestBlocks.gaussian(rnd, n * k, 0.4), n, k, 4, null);
            try (FlatQuantLinear big = FlatQuantLinear.of(ctx, w, null, new TokenQuantizer(8, 0.9, 0.9), new OnlineTransform(invertible(n1), n1, invertible(n2), n2));
                 FlatQuantLinear none = FlatQuantLinear.of(ctx, w, null, new TokenQuantizer(8, 0.9, 0.9), null)) {
                float[] x = floats(rnd, tokens * k, 1);
                for (FlatQuantLinear layer : new FlatQuantLinear[] {big, none}) {
                    assertTrue(!layer.usesFusedTransform(), layer.toString());
                    assertArrayEquals(layer.simulateCodes(x, tokens).codes(), layer.nativeCodes(x, tokens).codes(), layer.toString());
                    float[] y = new float[tokens * n];
                    layer.forward(x, tokens, y);
                    assertArrayEquals(layer.simulate(x, tokens), y, 0f, layer.toString());
                }
            }
        }
    }

    /** A NaN reaching the fused kernel is the Java path's IllegalArgumentException, naming where it is. */
    @Test
    void nonFiniteInputOnTheFusedPathIsAClearException() {
        try (Context ctx = Context.open(Backend.CPU);
             FlatQuantLinear layer = randomLayer(ctx, 3, 5, 4, 4, 4, false)) {
            assertTrue(layer.usesFusedTransform());
            float[] x = floats(rnd, 2 * 15, 1);
            x[15 + 4] = Float.NaN;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> layer.forward(x, 2, new float[8]));
            assertTrue(e.getMessage().contains("row 1, column 4"), e.getMessage());
        }
    }

    @Test
    void eightBitLayerApproximatesTheFp64Product() {
        int n1 = 4, n2 = 6, k = 24, n = 10, tokens = 7;
        double[] p1 = invertible(n1), p2 = invertible(n2);
        double[] w = TestBlocks.gaussian(rnd, n * k, 0.5);
        // folded weight W·(P1 ⊗ P2)⁻ᵀ, so (x·P)·(W·P⁻ᵀ)ᵀ = x·Wᵀ before quantization
        double[] pInv = kronInverseTranspose(p1, n1, p2, n2);
        double[] folded = new double[n * k];
        for (int r = 0; r < n; r++) for (int c = 0; c < k; c++) {
            double s = 0;
            for (int j = 0; j < k; j++) s += w[r * k + j] * pInv[j * k + c];
            folded[r * k + c] = s;
        }
        float[] x = floats(rnd, tokens * k, 1);
        try (Context ctx = Context.open(Backend.CPU);
             FlatQuantLinear layer = FlatQuantLinear.of(ctx, ClippedWeights.quantize(folded, n, k, 8, null), null, new TokenQuantizer(8, 1, 1),
                     new OnlineTransform(p1, n1, p2, n2))) {
            float[] y = new float[tokens * n];
            layer.forward(x, tokens, y);
            double err = 0, norm = 0;
            for (int t = 0; t < tokens; t++) for (int r = 0; r < n; r++) {
                double ref = 0;
                for (int c = 0; c < k; c++) ref += x[t * k + c] * w[r * k + c];
                err += (y[t * n + r] - ref) * (y[t * n + r] - ref);
                norm += ref * ref;
            }
            assertTrue(err / norm < 1e-3, "relative squared error " + err / norm);
            assertTrue(err / norm > 0, "8-bit quantization cannot be exact here");
        }
    }

    @Test
    void clippedWeightsFollowTheFakeQuantizerAndPackAsLowbitH() {
        double[] w = {0.5, -1.0, 0.25, 0.1, 3.0, -0.2, 0.0};
        ClippedWeights q = ClippedWeights.quantize(w, 1, 7, 4, new double[] {0.5, 0.9});
        // hi = 0.5·3 = 1.5, lo = 0.9·(-1) = -0.9: s = 1.5/7; -1/s = -4.67 -> -5; 3/s = 14 -> clamped to 7
        double s = 1.5 / 7;
        assertEquals((float) s, q.scales()[0]);
        assertArrayEquals(new int[] {(int) Math.rint(0.5 / s), -5, (int) Math.rint(0.25 / s), 0, 7, -1, 0}, q.codes());
        byte[] packed = q.packed();
        assertEquals(4, packed.length); // 7 columns padded to 8 nibbles
        assertEquals((byte) ((q.codes()[0] & 0xF) | ((q.codes()[1] & 0xF) << 4)), packed[0]);
        // -8 is on the weight grid (a clipped large negative value reaches it)
        assertEquals(-8, ClippedWeights.quantize(new double[] {-10, 1}, 1, 2, 4, new double[] {0.1, 0.1}).codes()[0]);
    }

    @Test
    void refusesBadInput() {
        try (Context ctx = Context.open(Backend.CPU)) {
            ClippedWeights w8 = ClippedWeights.quantize(TestBlocks.gaussian(rnd, 4 * 6, 1), 4, 6, 8, null);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> FlatQuantLinear.of(ctx, w8, null, new TokenQuantizer(4, 1, 1), null));
            assertTrue(e.getMessage().contains("W8A4"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> FlatQuantLinear.of(ctx, w8, null, new TokenQuantizer(8, 1, 1),
                    new OnlineTransform(null, 2, null, 2)));
            assertTrue(e.getMessage().contains("transform"), e.getMessage());
            assertThrows(NullPointerException.class, () -> FlatQuantLinear.of(null, w8, null, new TokenQuantizer(8, 1, 1), null));
            assertThrows(IllegalArgumentException.class, () -> FlatQuantLinear.of(ctx, w8, new float[3], new TokenQuantizer(8, 1, 1), null));
            try (FlatQuantLinear layer = FlatQuantLinear.of(ctx, w8, null, new TokenQuantizer(8, 1, 1), null)) {
                float[] x = floats(rnd, 12, 1);
                x[7] = Float.NaN;
                e = assertThrows(IllegalArgumentException.class, () -> layer.forward(x, 2, new float[8]));
                assertTrue(e.getMessage().contains("token 1, channel 1"), e.getMessage());
                assertThrows(IllegalArgumentException.class, () -> layer.forward(new float[5], 1, new float[4]));
                assertThrows(IllegalArgumentException.class, () -> layer.forward(new float[6], 1, new float[3]));
            }
        }
        assertThrows(IllegalArgumentException.class, () -> new TokenQuantizer(3, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> new TokenQuantizer(4, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new TokenQuantizer(4, 1, Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> ClippedWeights.quantize(new double[] {1, Double.NaN}, 1, 2, 4, null));
        assertThrows(IllegalArgumentException.class, () -> ClippedWeights.quantize(new double[] {1, 2}, 1, 2, 4, new double[3]));
        assertThrows(IllegalArgumentException.class, () -> new OnlineTransform(new double[8], 3, null, 2));
        assertThrows(IllegalArgumentException.class, () -> new OnlineTransform(new double[] {Double.POSITIVE_INFINITY}, 1, null, 2));
    }

    private FlatQuantLinear randomLayer(Context ctx, int n1, int n2, int n, int wBits, int aBits, boolean bias) {
        int k = n1 * n2;
        double[] clip = new double[2 * n];
        for (int i = 0; i < clip.length; i++) clip[i] = 0.7 + 0.3 * rnd.nextDouble();
        ClippedWeights w = ClippedWeights.quantize(TestBlocks.gaussian(rnd, n * k, 0.4), n, k, wBits, clip);
        float[] b = bias ? floats(rnd, n, 0.2) : null;
        return FlatQuantLinear.of(ctx, w, b, new TokenQuantizer(aBits, 0.8, 0.9), new OnlineTransform(invertible(n1), n1, invertible(n2), n2));
    }

    /** A well-conditioned random matrix: identity plus small Gaussian noise. */
    private double[] invertible(int m) {
        double[] p = TestBlocks.gaussian(rnd, m * m, 0.2);
        for (int i = 0; i < m; i++) p[i * m + i] += 1;
        return p;
    }

    /** (P1 ⊗ P2)⁻ᵀ = P1⁻ᵀ ⊗ P2⁻ᵀ, by Gauss-Jordan inversion of each factor. */
    private static double[] kronInverseTranspose(double[] p1, int n1, double[] p2, int n2) {
        double[] a = inverseTranspose(p1, n1), b = inverseTranspose(p2, n2);
        int n = n1 * n2;
        double[] k = new double[n * n];
        for (int i = 0; i < n1; i++) for (int j = 0; j < n2; j++) for (int x = 0; x < n1; x++) for (int y = 0; y < n2; y++) {
            k[(i * n2 + j) * n + x * n2 + y] = a[i * n1 + x] * b[j * n2 + y];
        }
        return k;
    }

    private static double[] inverseTranspose(double[] p, int m) {
        double[] a = p.clone(), inv = new double[m * m];
        for (int i = 0; i < m; i++) inv[i * m + i] = 1;
        for (int c = 0; c < m; c++) {
            int piv = c;
            for (int r = c + 1; r < m; r++) if (Math.abs(a[r * m + c]) > Math.abs(a[piv * m + c])) piv = r;
            for (int j = 0; j < m; j++) {
                double t = a[c * m + j]; a[c * m + j] = a[piv * m + j]; a[piv * m + j] = t;
                t = inv[c * m + j]; inv[c * m + j] = inv[piv * m + j]; inv[piv * m + j] = t;
            }
            double d = a[c * m + c];
            for (int j = 0; j < m; j++) { a[c * m + j] /= d; inv[c * m + j] /= d; }
            for (int r = 0; r < m; r++) {
                if (r == c) continue;
                double f = a[r * m + c];
                for (int j = 0; j < m; j++) { a[r * m + j] -= f * a[c * m + j]; inv[r * m + j] -= f * inv[c * m + j]; }
            }
        }
        double[] t = new double[m * m];
        for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) t[i * m + j] = inv[j * m + i];
        return t;
    }

    static float[] floats(Random rnd, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (rnd.nextGaussian() * std);
        return v;
    }
}
