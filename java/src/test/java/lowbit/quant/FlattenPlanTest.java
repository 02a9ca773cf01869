package lowbit.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import lowbit.quant.FlattenPlan.Order;
import org.junit.jupiter.api.Test;

class FlattenPlanTest {

    static double[] matmulT(double[] x, int m, double[] w, int n, int k) {
        double[] y = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int c = 0; c < k; c++) {
                    acc += x[i * k + c] * w[j * k + c];
                }
                y[i * n + j] = acc;
            }
        }
        return y;
    }

    static void assertRelativeClose(double[] expected, double[] actual, double tol) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            num = Math.max(num, Math.abs(expected[i] - actual[i]));
            den = Math.max(den, Math.abs(expected[i]));
        }
        assertTrue(num <= tol * den, "max abs diff " + num + " exceeds " + tol + " x " + den);
    }

    /** Random copies (most channels 1, a quarter split into 2..7) and smoothing scales. */
    private static int[] randomCopies(SplittableRandom r, int k) {
        int[] copies = new int[k];
        for (int j = 0; j < k; j++) {
            copies[j] = 1 + (r.nextInt(4) == 0 ? r.nextInt(7) : 0);
        }
        return copies;
    }

    private static double[] randomScales(SplittableRandom r, int k) {
        double[] scale = new double[k];
        for (int j = 0; j < k; j++) {
            scale[j] = Math.exp(r.nextGaussian());
        }
        return scale;
    }

    /** Every variant of a random plan: both orders, with and without scale and padding (odd multiple). */
    private static List<FlattenPlan> variants(int[] copies, double[] scale) {
        List<FlattenPlan> plans = new ArrayList<>();
        for (Order order : Order.values()) {
            FlattenPlan p = FlattenPlan.ofCopies(copies).withOrder(order);
            plans.add(p);
            plans.add(p.withInputScale(scale));
            plans.add(p.paddedTo(8));
            plans.add(p.withInputScale(scale).paddedTo(7));
            plans.add(p.paddedTo(5).withInputScale(scale));
        }
        return plans;
    }

    @Test
    void appendedLayoutByHand() {
        int[] copies = {1, 3, 1, 2, 1};
        FlattenPlan plan = FlattenPlan.ofCopies(copies);
        assertEquals(Order.APPENDED, plan.order());
        assertEquals(5, plan.inFeatures());
        assertEquals(8, plan.expandedFeatures());
        // first copies at their own index, then channel 1's two extra copies, then channel 3's one
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 1, 1, 3}, plan.sourceChannels());
        float third = (float) (1.0 / 3);
        assertArrayEquals(new float[] {1f, third, 1f, 0.5f, 1f, third, third, 0.5f}, plan.multipliers());

        // with a scale s: multiplier 1 / (k_j s_j), every copy of a channel the same
        FlattenPlan scaled = plan.withInputScale(new double[] {2, 0.5, 4, 0.25, 1});
        assertEquals(Order.APPENDED, scaled.order());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 1, 1, 3}, scaled.sourceChannels());
        float m1 = (float) (1.0 / (3 * 0.5));
        assertArrayEquals(new float[] {0.5f, m1, 0.25f, 2f, 1f, m1, m1, 2f}, scaled.multipliers());

        // padding goes after the appended copies: source 0, multiplier 0, zero weights
        FlattenPlan padded = scaled.paddedTo(11);
        assertEquals(Order.APPENDED, padded.order());
        assertEquals(3, padded.padding());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 1, 1, 3, 0, 0, 0}, padded.sourceChannels());
        assertArrayEquals(new float[] {0.5f, m1, 0.25f, 2f, 1f, m1, m1, 2f, 0f, 0f, 0f}, padded.multipliers());
        float[] w = {10, 20, 30, 40, 50, -1, -2, -3, -4, -5};
        assertArrayEquals(new float[] {20, 10, 120, 10, 50, 10, 10, 10, 0, 0, 0, -2, -1, -12, -1, -5, -1, -1, -1, 0, 0, 0},
                padded.expandWeights(w, 2));
        float[] x = {6f, -3f, 8f, 2f, 7f};
        assertArrayEquals(new float[] {3f, -3f * m1, 2f, 4f, 7f, -3f * m1, -3f * m1, 4f, 0f, 0f, 0f}, padded.flatten(x, 1));

        // the old layout of the same copies
        FlattenPlan adjacent = padded.withOrder(Order.ADJACENT);
        assertArrayEquals(new int[] {0, 1, 1, 1, 2, 3, 3, 4, 0, 0, 0}, adjacent.sourceChannels());
        assertArrayEquals(new float[] {0.5f, m1, m1, m1, 0.25f, 2f, 2f, 1f, 0f, 0f, 0f}, adjacent.multipliers());
        assertArrayEquals(new float[] {20, 10, 10, 10, 120, 10, 10, 50, 0, 0, 0, -2, -1, -1, -1, -12, -1, -1, -5, 0, 0, 0},
                adjacent.expandWeights(w, 2));
        assertEquals(padded, adjacent.withOrder(Order.APPENDED));
    }

    /**
     * Structure of a random plan in either order: K' = sum k_j + padding; channel j appears exactly
     * k_j times, always with multiplier 1/(k_j s_j); APPENDED puts copy 1 of channel j at j and the
     * extra copies after K in non-decreasing channel order; ADJACENT has source[] non-decreasing;
     * padding (source 0, multiplier 0) is last.
     */
    @Test
    void randomPlansHaveTheirOrdersLayout() {
        SplittableRandom r = new SplittableRandom(5);
        for (int k : new int[] {1, 2, 13, 61, 127}) {
            int[] copies = randomCopies(r, k);
            double[] scale = randomScales(r, k);
            int sum = Arrays.stream(copies).sum();
            for (FlattenPlan plan : variants(copies, scale)) {
                String what = plan + " " + Arrays.toString(copies);
                int[] src = plan.sourceChannels();
                float[] mult = plan.multipliers();
                int real = src.length - plan.padding();
                assertEquals(sum, real, what);
                int[] seen = new int[k];
                for (int j = 0; j < real; j++) {
                    seen[src[j]]++;
                    assertEquals((float) (1.0 / (copies[src[j]] * plan.inputScale(src[j]))), mult[j], what + " at " + j);
                    if (plan.order() == Order.APPENDED) {
                        if (j < k) {
                            assertEquals(j, src[j], what + " at " + j);
                        } else {
                            assertTrue(j == k || src[j - 1] <= src[j], what + " at " + j);
                            assertTrue(copies[src[j]] > 1, what + " at " + j);
                        }
                    } else if (j > 0) {
                        assertTrue(src[j - 1] <= src[j], what + " at " + j);
                    }
                }
                assertArrayEquals(copies, seen, what);
                for (int j = real; j < src.length; j++) {
                    assertEquals(0, src[j], what);
                    assertEquals(0f, mult[j], what);
                }
            }
        }
    }

    @Test
    void flattenedProductEqualsOriginalInFp64() {
        SplittableRandom r = new SplittableRandom(11);
        int[][] shapes = {{7, 13, 5}, {33, 61, 17}, {1, 1, 1}, {9, 127, 31}};
        for (int[] s : shapes) {
            int m = s[0];
            int k = s[1];
            int n = s[2];
            double[] x = new double[m * k];
            double[] w = new double[n * k];
            for (int i = 0; i < x.length; i++) {
                x[i] = r.nextGaussian() * (r.nextInt(10) == 0 ? 80 : 1);
            }
            for (int i = 0; i < w.length; i++) {
                w[i] = r.nextGaussian();
            }
            int[] copies = randomCopies(r, k);
            double[] scale = randomScales(r, k);
            double[] y = matmulT(x, m, w, n, k);
            for (FlattenPlan plan : variants(copies, scale)) {
                int kp = plan.expandedFeatures();
                double[] yp = matmulT(plan.flatten(x, m), m, plan.expandWeights(w, n), n, kp);
                assertRelativeClose(y, yp, 1e-12);
            }
        }
    }

    /** The float32 paths read exactly the kernel arrays, and the float weights equal the FP64 ones rounded. */
    @Test
    void floatPathsFollowTheKernelArrays() {
        SplittableRandom r = new SplittableRandom(3);
        int m = 3;
        int k = 29;
        int n = 5;
        float[] x = new float[m * k];
        float[] w = new float[n * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (r.nextGaussian() * 4);
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) r.nextGaussian();
        }
        double[] wd = new double[w.length];
        for (int i = 0; i < w.length; i++) {
            wd[i] = w[i];
        }
        float[] channelMax = new float[k];
        for (int j = 0; j < k; j++) {
            channelMax[j] = (float) Math.abs(r.nextGaussian() * 10);
        }
        for (FlattenPlan plan : variants(randomCopies(r, k), randomScales(r, k))) {
            int kp = plan.expandedFeatures();
            int[] src = plan.sourceChannels();
            float[] mult = plan.multipliers();
            float[] f = plan.flatten(x, m);
            assertEquals(m * kp, f.length);
            float amax = 0f;
            for (int t = 0; t < m; t++) {
                for (int j = 0; j < kp; j++) {
                    assertEquals(x[t * k + src[j]] * mult[j], f[t * kp + j], plan + " token " + t + " column " + j);
                }
            }
            for (int j = 0; j < kp; j++) {
                amax = Math.max(amax, Math.abs(channelMax[src[j]] * mult[j]));
            }
            assertEquals(amax, plan.flattenedAbsMax(channelMax), plan.toString());
            float[] wp = plan.expandWeights(w, n);
            double[] wpd = plan.expandWeights(wd, n);
            for (int i = 0; i < wp.length; i++) {
                assertEquals((float) wpd[i], wp[i], plan + " weight " + i);
            }
        }
    }

    /**
     * A layer built with either order computes the same output bit for bit: the expanded columns
     * are the same multiset (same per-channel weight scales and activation maxima), and the int32
     * dot product does not depend on where its terms sit.
     */
    @Test
    void bothOrdersGiveTheSameQuantizedLayerOutput() {
        SplittableRandom r = new SplittableRandom(17);
        int m = 5;
        int k = 37;
        int n = 11;
        float[] x = new float[m * k];
        float[] w = new float[n * k];
        float[] bias = new float[n];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (r.nextGaussian() * (r.nextInt(8) == 0 ? 30 : 1));
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) r.nextGaussian();
        }
        for (int i = 0; i < n; i++) {
            bias[i] = (float) r.nextGaussian();
        }
        FlattenPlan appended = FlattenPlan.ofCopies(randomCopies(r, k)).withInputScale(randomScales(r, k)).paddedTo(8);
        FlattenPlan adjacent = appended.withOrder(Order.ADJACENT);
        assertTrue(!Arrays.equals(appended.sourceChannels(), adjacent.sourceChannels()), "the test needs a split channel");
        for (Precision p : new Precision[] {Precision.INT8, Precision.INT4}) {
            float[] want = new float[m * n];
            float[] got = new float[m * n];
            Arrays.fill(want, Float.NaN);
            Arrays.fill(got, Float.NaN);
            QuantizedLinear.create(w, bias, n, k, appended, p, true, QuantizedLinear.DYNAMIC).forward(x, m, want);
            QuantizedLinear.create(w, bias, n, k, adjacent, p, true, QuantizedLinear.DYNAMIC).forward(x, m, got);
            for (int i = 0; i < want.length; i++) {
                assertTrue(Float.isFinite(want[i]), p + " output " + i + " not written");
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), p + " output " + i);
            }
        }
    }

    @Test
    void thresholdRuleAndLayout() {
        float[] max = {1f, 10f, 2.5f, 0.5f, 7f};
        FlattenPlan plan = FlattenPlan.forThreshold(max, 2.5);
        assertEquals(Order.APPENDED, plan.order());
        // k_j = ceil(m_j / T) above T: 10/2.5 = 4, 7/2.5 -> 3; at or below T stays 1
        assertEquals(1, plan.copies(0));
        assertEquals(4, plan.copies(1));
        assertEquals(1, plan.copies(2));
        assertEquals(1, plan.copies(3));
        assertEquals(3, plan.copies(4));
        assertEquals(10, plan.expandedFeatures());
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 1, 1, 1, 4, 4}, plan.sourceChannels());
        float[] mult = plan.multipliers();
        assertEquals(1f, mult[0]);
        assertEquals(0.25f, mult[1]);
        assertEquals(0.25f, mult[7]);
        assertEquals((float) (1.0 / 3), mult[4]);
        assertEquals((float) (1.0 / 3), mult[9]);
        assertEquals(2.5f, plan.flattenedAbsMax(max));
        assertEquals(2.0, plan.expansionRatio(), 0);

        FlattenPlan padded = plan.paddedTo(8);
        assertEquals(16, padded.expandedFeatures());
        assertEquals(0f, padded.multipliers()[15]);
        float[] w = {1, 2, 3, 4, 5};
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 2, 2, 2, 5, 5, 0, 0, 0, 0, 0, 0}, padded.expandWeights(w, 1));
        assertArrayEquals(new float[] {1, 2, 2, 2, 2, 3, 4, 5, 5, 5, 0, 0, 0, 0, 0, 0},
                padded.withOrder(Order.ADJACENT).expandWeights(w, 1));
        assertEquals(FlattenPlan.identity(4), FlattenPlan.ofCopies(new int[] {1, 1, 1, 1}));
    }

    @Test
    void identityIsTheSameLayoutInBothOrdersButOrdersAreNotEqual() {
        FlattenPlan id = FlattenPlan.identity(6);
        FlattenPlan old = id.withOrder(Order.ADJACENT);
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5}, id.sourceChannels());
        assertArrayEquals(id.sourceChannels(), old.sourceChannels());
        assertArrayEquals(id.multipliers(), old.multipliers());
        assertNotEquals(id, old);
        assertEquals(old, FlattenPlan.identity(6).withOrder(Order.ADJACENT));
        assertEquals(old.hashCode(), FlattenPlan.identity(6).withOrder(Order.ADJACENT).hashCode());
        assertTrue(id.withOrder(Order.APPENDED) == id);
        assertThrows(NullPointerException.class, () -> id.withOrder(null));
    }

    @Test
    void runtimeFloatFlattenUsesKernelArrays() {
        FlattenPlan plan = FlattenPlan.ofCopies(new int[] {3, 1, 2}).withInputScale(new double[] {2, 1, 0.5});
        float[] x = {6f, -1f, 3f};
        float[] f = plan.flatten(x, 1);
        int[] src = plan.sourceChannels();
        float[] mult = plan.multipliers();
        for (int j = 0; j < f.length; j++) {
            assertEquals(x[src[j]] * mult[j], f[j]);
        }
        assertArrayEquals(new float[] {1f, -1f, 3f, 1f, 1f, 3f}, f);
    }

    @Test
    void jsonRoundTripOfBothOrders() {
        FlattenPlan plan = FlattenPlan.ofCopies(new int[] {1, 5, 2}).withInputScale(new double[] {0.3, 1.7, 1e-3}).paddedTo(4);
        for (Order order : Order.values()) {
            FlattenPlan p = plan.withOrder(order);
            String json = p.toJson();
            assertTrue(json.contains("\"version\":2"), json);
            assertTrue(json.contains("\"order\":\"" + (order == Order.APPENDED ? "appended" : "adjacent") + "\""), json);
            FlattenPlan back = FlattenPlan.fromJson(json);
            assertEquals(p, back);
            assertEquals(p.hashCode(), back.hashCode());
            assertEquals(order, back.order());
            assertArrayEquals(p.multipliers(), back.multipliers());
            assertArrayEquals(p.sourceChannels(), back.sourceChannels());
        }
        FlattenPlan id = FlattenPlan.fromJson(FlattenPlan.identity(3).toJson());
        assertEquals(FlattenPlan.identity(3), id);
    }

    /** Version-1 JSON exactly as the writer before the order wrote it: copies adjacent, the old source[] order. */
    @Test
    void versionOneJsonReadsAsAdjacent() {
        String v1 = "{\"format\":\"lowbit-flatten-plan\",\"version\":1,\"copies\":[1,3,1,2,1],"
                + "\"inputScale\":[2.0,0.5,4.0,0.25,1.0],\"padding\":3}";
        FlattenPlan plan = FlattenPlan.fromJson(v1);
        assertEquals(Order.ADJACENT, plan.order());
        assertEquals(3, plan.padding());
        assertArrayEquals(new int[] {0, 1, 1, 1, 2, 3, 3, 4, 0, 0, 0}, plan.sourceChannels());
        float m1 = (float) (1.0 / (3 * 0.5));
        assertArrayEquals(new float[] {0.5f, m1, m1, m1, 0.25f, 2f, 2f, 1f, 0f, 0f, 0f}, plan.multipliers());
        assertEquals(FlattenPlan.ofCopies(new int[] {1, 3, 1, 2, 1}).withInputScale(new double[] {2, 0.5, 4, 0.25, 1})
                .paddedTo(11).withOrder(Order.ADJACENT), plan);
        // written again it becomes version 2 "adjacent", the same plan
        String v2 = plan.toJson();
        assertTrue(v2.contains("\"version\":2") && v2.contains("\"order\":\"adjacent\""), v2);
        assertEquals(plan, FlattenPlan.fromJson(v2));

        FlattenPlan unscaled = FlattenPlan.fromJson(
                "{\"format\":\"lowbit-flatten-plan\",\"version\":1,\"copies\":[2,1],\"inputScale\":null,\"padding\":0}");
        assertEquals(Order.ADJACENT, unscaled.order());
        assertArrayEquals(new int[] {0, 0, 1}, unscaled.sourceChannels());
        assertArrayEquals(new float[] {0.5f, 0.5f, 1f}, unscaled.multipliers());
    }

    @Test
    void badOrderOrVersionIsRefusedClearly() {
        String base = "{\"format\":\"lowbit-flatten-plan\",\"version\":%s,%s\"copies\":[1,2],\"inputScale\":null,\"padding\":0}";
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FlattenPlan.fromJson(String.format(base, "2", "\"order\":\"interleaved\",")));
        assertTrue(e.getMessage().contains("'interleaved'") && e.getMessage().contains("appended")
                && e.getMessage().contains("adjacent"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> FlattenPlan.fromJson(String.format(base, "2", "")));
        assertTrue(e.getMessage().contains("order") && e.getMessage().contains("none"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> FlattenPlan.fromJson(String.format(base, "2", "\"order\":1,")));
        assertTrue(e.getMessage().contains("order"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> FlattenPlan.fromJson(String.format(base, "1", "\"order\":\"appended\",")));
        assertTrue(e.getMessage().contains("version 1") && e.getMessage().contains("order"), e.getMessage());
        for (String version : new String[] {"0", "3", "\"x\""}) {
            UnsupportedFormatVersionException u = assertThrows(UnsupportedFormatVersionException.class,
                    () -> FlattenPlan.fromJson(String.format(base, version, "\"order\":\"appended\",")));
            assertTrue(u.getMessage().contains("versions 1 and 2"), u.getMessage());
        }
        // the two valid forms of the same string template, for contrast
        assertEquals(Order.APPENDED, FlattenPlan.fromJson(String.format(base, "2", "\"order\":\"appended\",")).order());
        assertEquals(Order.ADJACENT, FlattenPlan.fromJson(String.format(base, "1", "")).order());
    }
}
