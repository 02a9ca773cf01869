package lowbit.model;

import static org.junit.jupiter.api.Assertions.*;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import lowbit.calibrate.QuantSpec;
import lowbit.flatquant.FlatQuantKvCodec;
import org.junit.jupiter.api.Test;

/**
 * The packed KV cache ({@link PackedKvStore}) against the simulated float cache under the same
 * FlatQuant codec: after the same stores (a prefill and single-token steps, random rows with
 * outliers, a constant group whose zero point is far outside any int, an all-zero group), attention
 * reads bit-identical keys and values; the packed cache takes {@code (⌈kvDim/2⌉ + 16·groups)} bytes
 * per position and K or V row where floats take {@code 4·kvDim} (0.1875 at SmolLM2's 3 KV heads of
 * 64 with a group per head), and changing the storage of a filled cache is refused.
 */
class PackedKvCacheTest {
    private static FlatQuantKvCodec codec(int layers, int heads, int kvHeads, int hd, int group, Random rnd, boolean packed) {
        List<FlatQuantKvCodec.Layer> list = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            float[] p = new float[hd * hd], pit = new float[hd * hd];
            for (int i = 0; i < hd; i++) {
                for (int j = 0; j < hd; j++) {
                    p[i * hd + j] = (float) ((i == j ? 1 : 0) + 0.2 * rnd.nextGaussian());
                    pit[i * hd + j] = (float) rnd.nextGaussian();
                }
            }
            list.add(new FlatQuantKvCodec.Layer(p, pit, new double[] {0.9 + 0.1 * rnd.nextDouble(), 0.8 + 0.2 * rnd.nextDouble()},
                    new double[] {1, 1}));
        }
        return new FlatQuantKvCodec(heads, kvHeads, hd, QuantSpec.grouped(4, false, group), list, packed);
    }

    private static void check(int layers, int heads, int kvHeads, int hd, int group, long seed) {
        int kvDim = kvHeads * hd, capacity = 11;
        FlatQuantKvCodec sim = codec(layers, heads, kvHeads, hd, group, new Random(seed), false);
        FlatQuantKvCodec packed = sim.withPacked(true);
        KvCache a = new KvCache(layers, capacity, kvHeads, hd, sim), b = new KvCache(layers, capacity, kvHeads, hd, packed);
        assertFalse(a.isPacked());
        assertTrue(b.isPacked());
        Random rnd = new Random(seed + 1);
        int pos = 0;
        for (int tokens : new int[] {5, 1, 1, 3}) {
            for (int l = 0; l < layers; l++) {
                float[] k = new float[tokens * kvDim], v = new float[tokens * kvDim];
                for (int i = 0; i < k.length; i++) {
                    k[i] = (float) (rnd.nextGaussian() * (rnd.nextInt(50) == 0 ? 20 : 1));
                    v[i] = (float) rnd.nextGaussian();
                }
                java.util.Arrays.fill(v, 0, group, 0.5f);         // constant group: clip 1/1, s floored, z ≈ -5e9
                if (kvDim >= 2 * group) java.util.Arrays.fill(v, group, 2 * group, 0f); // an all-zero group (when there are two)
                a.store(l, pos, k, v, tokens);
                b.store(l, pos, k, v, tokens);
            }
            pos += tokens;
            a.advance(tokens);
            b.advance(tokens);
            for (int l = 0; l < layers; l++) {
                float[][] ka = a.keysForAttention(l, pos), kb = b.keysForAttention(l, pos);
                for (int c = 0; c < kvDim; c++) {
                    for (int p = 0; p < pos; p++) {
                        assertEquals(Float.floatToIntBits(ka[c][p]), Float.floatToIntBits(kb[c][p]), "key layer " + l + " dim " + c + " pos " + p);
                    }
                }
                float[][] va = a.valuesForAttention(l, pos), vb = b.valuesForAttention(l, pos);
                for (int r = 0; r < pos * kvHeads; r++) {
                    for (int d = 0; d < hd; d++) {
                        assertEquals(Float.floatToIntBits(va[r][d]), Float.floatToIntBits(vb[r][d]), "value layer " + l + " row " + r + " dim " + d);
                    }
                }
                // the constant group reads back as (about) its value: the zero point did not overflow
                assertEquals(0.5f, vb[0][0], 1e-6f);
            }
        }
        long floats = 8L * layers * capacity * kvDim;
        assertEquals(floats, a.bytes());
        assertEquals(2L * layers * capacity * ((kvDim + 1) / 2 + 16L * (kvDim / group)), b.bytes());
    }

    @Test
    void packedCacheReadsTheSimulatedValuesBitForBit() {
        check(2, 9, 3, 64, 64, 1);   // SmolLM2's KV shape, a group per head
        check(3, 4, 2, 12, 12, 2);
        check(1, 2, 1, 7, 7, 3);     // odd row length: the last byte of a row holds one code
        check(2, 6, 3, 8, 4, 4);     // two groups per head
    }

    @Test
    void packedCacheIsAboutAnEighthOfTheFloatCache() {
        FlatQuantKvCodec packed = codec(30, 9, 3, 64, 64, new Random(5), true);
        KvCache f = new KvCache(30, 2048, 3, 64), p = new KvCache(30, 2048, 3, 64, packed);
        double ratio = (double) p.bytes() / f.bytes();
        assertEquals((96 + 48) / 768.0, ratio, 1e-12, "codes 4/32 of the floats plus 16 bytes of scale and zero point per group of 64");
        assertTrue(ratio < 0.19, "ratio " + ratio);
    }

    @Test
    void storageChangesOnlyOnAnEmptyCache() {
        FlatQuantKvCodec packed = codec(1, 2, 1, 4, 4, new Random(6), true);
        KvCache c = new KvCache(1, 4, 1, 4);
        assertFalse(c.isPacked());
        c.setCodec(packed);
        assertTrue(c.isPacked());
        c.store(0, 0, new float[4], new float[4], 1);
        c.advance(1);
        assertThrows(IllegalStateException.class, () -> c.setCodec(null));
        assertThrows(IllegalStateException.class, () -> c.setCodec(packed.withPacked(false)));
        c.setCodec(packed); // the same storage: allowed
        c.reset();
        c.setCodec(null);
        assertFalse(c.isPacked());
        assertThrows(IllegalArgumentException.class, () -> new FlatQuantKvCodec(2, 1, 4, QuantSpec.grouped(8, false, 4), packed.layers(), true));
    }
}
