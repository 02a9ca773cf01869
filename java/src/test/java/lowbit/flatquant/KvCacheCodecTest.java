package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import lowbit.calibrate.QuantSpec;
import lowbit.io.RealModelFixture;
import lowbit.model.KvCache;
import lowbit.model.LlamaConfig;
import lowbit.model.LlamaModel;
import org.junit.jupiter.api.Test;

/**
 * The KV-cache hook on the real model (skipped when it is unavailable): a cache without a codec and
 * one with a do-nothing codec give the same hidden states bit for bit (prefill and a decode step);
 * FlatQuant's K transform with a near-lossless 16-bit KV quantizer reproduces the model (the
 * inverse transform on the queries undoes it; without it the result is far off); KV4 changes the
 * result, within bounds.
 */
class KvCacheCodecTest {
    private static final int TOKENS = 20;

    @Test
    void codecOffKeepsResultsAndKTransformIsUndoneOnQueries() throws IOException {
        LlamaModel model = LlamaModel.load(RealModelFixture.gguf());
        LlamaConfig c = model.config();
        int[] tokens = new int[TOKENS];
        for (int i = 0; i < TOKENS; i++) tokens[i] = 200 + 37 * i;
        int[] next = {4321};
        float[][] ref = run(model, null, tokens, next);
        KvCache.Codec noop = new KvCache.Codec() {
            @Override
            public void keys(int layer, float[] k, int n) {}

            @Override
            public void values(int layer, float[] v, int n) {}

            @Override
            public void queries(int layer, float[] q, int n) {}
        };
        float[][] same = run(model, noop, tokens, next);
        assertArrayEquals(ref[0], same[0]);
        assertArrayEquals(ref[1], same[1]);

        Random rnd = new Random(5);
        int hd = c.headDim();
        List<FlatQuantKvCodec.Layer> exact = new ArrayList<>(), wrong = new ArrayList<>();
        double[] noClip = {1, 1};
        for (int l = 0; l < c.blockCount(); l++) {
            float[][] p = invertibleWithInverseTranspose(hd, rnd);
            exact.add(new FlatQuantKvCodec.Layer(p[0], p[1], noClip, noClip));
            wrong.add(new FlatQuantKvCodec.Layer(p[0], p[0], noClip, noClip));
        }
        QuantSpec kv16 = QuantSpec.grouped(16, false, hd), kv4 = QuantSpec.grouped(4, false, hd);
        double errExact = error(run(model, new FlatQuantKvCodec(c.headCount(), c.kvHeadCount(), hd, kv16, exact), tokens, next), ref);
        double errWrong = error(run(model, new FlatQuantKvCodec(c.headCount(), c.kvHeadCount(), hd, kv16, wrong), tokens, next), ref);
        double errKv4 = error(run(model, new FlatQuantKvCodec(c.headCount(), c.kvHeadCount(), hd, kv4, exact), tokens, next), ref);
        System.out.printf("hidden-state relative error: K transform + KV16 %.3e, without the query inverse %.3e, K transform + KV4 %.3e%n",
                errExact, errWrong, errKv4);
        assertTrue(errExact < 1e-4, "K transform with a 16-bit cache: " + errExact);
        assertTrue(errWrong > 1e-2, "the query side must matter: " + errWrong);
        assertTrue(errKv4 > 10 * errExact && errKv4 < 0.5, "KV4: " + errKv4);
    }

    /**
     * On the real model (3 KV heads of 64, a group per head): the packed KV4 cache gives the hidden
     * states of the simulated one bit for bit (prefill and decode), in 18.75% of its bytes.
     */
    @Test
    void packedKv4CacheEqualsSimulatedKv4() throws IOException {
        LlamaModel model = LlamaModel.load(RealModelFixture.gguf());
        LlamaConfig c = model.config();
        int[] tokens = new int[TOKENS];
        for (int i = 0; i < TOKENS; i++) tokens[i] = 300 + 41 * i;
        Random rnd = new Random(8);
        int hd = c.headDim();
        List<FlatQuantKvCodec.Layer> layers = new ArrayList<>();
        for (int l = 0; l < c.blockCount(); l++) {
            float[][] p = invertibleWithInverseTranspose(hd, rnd);
            layers.add(new FlatQuantKvCodec.Layer(p[0], p[1], new double[] {0.95, 0.9}, new double[] {0.9, 0.97}));
        }
        FlatQuantKvCodec simulated = new FlatQuantKvCodec(c.headCount(), c.kvHeadCount(), hd, QuantSpec.grouped(4, false, hd), layers);
        FlatQuantKvCodec packed = simulated.withPacked(true);
        KvCache a = model.newKvCache(TOKENS + 1, simulated), b = model.newKvCache(TOKENS + 1, packed);
        assertTrue(b.isPacked() && !a.isPacked());
        float[][] want = {model.forwardHidden(a, tokens), model.forwardHidden(a, new int[] {4321})};
        float[][] got = {model.forwardHidden(b, tokens), model.forwardHidden(b, new int[] {4321})};
        for (int p = 0; p < 2; p++) {
            for (int i = 0; i < want[p].length; i++) {
                if (Float.floatToIntBits(want[p][i]) != Float.floatToIntBits(got[p][i])) {
                    throw new AssertionError("pass " + p + " element " + i + ": packed " + got[p][i] + ", simulated " + want[p][i]);
                }
            }
        }
        assertEquals(0.1875, (double) b.bytes() / a.bytes(), 1e-12);
    }

    @Test
    void codecRefusesBadShapes() {
        float[] p = new float[16];
        FlatQuantKvCodec.Layer l = new FlatQuantKvCodec.Layer(p, p, new double[] {1, 1}, new double[] {1, 1});
        assertThrows(IllegalArgumentException.class, () -> new FlatQuantKvCodec(2, 1, 8, QuantSpec.grouped(4, false, 8), List.of(l)));
        assertThrows(IllegalArgumentException.class, () -> new FlatQuantKvCodec(2, 1, 4, QuantSpec.grouped(4, true, 4), List.of(l)));
        assertThrows(IllegalArgumentException.class, () -> new FlatQuantKvCodec(2, 1, 4, QuantSpec.grouped(4, false, 3), List.of(l)));
        FlatQuantKvCodec ok = new FlatQuantKvCodec(2, 1, 4, QuantSpec.grouped(4, false, 4), List.of(l));
        assertThrows(IllegalArgumentException.class, () -> ok.keys(1, new float[4], 1));
        float[] bad = {1, Float.NaN, 0, 0};
        assertThrows(IllegalArgumentException.class, () -> ok.values(0, bad, 1));
    }

    /** Hidden states of a prefill of {@code tokens} and of one decode step after it. */
    private static float[][] run(LlamaModel model, KvCache.Codec codec, int[] tokens, int[] next) {
        KvCache cache = model.newKvCache(TOKENS + 1);
        cache.setCodec(codec);
        float[] prefill = model.forwardHidden(cache, tokens);
        float[] decode = model.forwardHidden(cache, next);
        return new float[][] {prefill, decode};
    }

    private static double error(float[][] got, float[][] ref) {
        double e = 0, n = 0;
        for (int p = 0; p < 2; p++) {
            for (int i = 0; i < ref[p].length; i++) {
                e += (got[p][i] - ref[p][i]) * (double) (got[p][i] - ref[p][i]);
                n += ref[p][i] * (double) ref[p][i];
            }
        }
        return e / n;
    }

    /** {@code P = Q·D} (Q random orthogonal, D diagonal in [0.5, 2]) and {@code P⁻ᵀ = Q·D⁻¹}, row-major. */
    private static float[][] invertibleWithInverseTranspose(int m, Random rnd) {
        double[][] q = new double[m][m]; // columns
        for (int j = 0; j < m; j++) {
            for (int i = 0; i < m; i++) q[j][i] = rnd.nextGaussian();
            for (int prev = 0; prev < j; prev++) {
                double dot = 0;
                for (int i = 0; i < m; i++) dot += q[j][i] * q[prev][i];
                for (int i = 0; i < m; i++) q[j][i] -= dot * q[prev][i];
            }
            double norm = 0;
            for (int i = 0; i < m; i++) norm += q[j][i] * q[j][i];
            for (int i = 0; i < m; i++) q[j][i] /= Math.sqrt(norm);
        }
        float[] p = new float[m * m], pit = new float[m * m];
        for (int j = 0; j < m; j++) {
            double d = 0.5 + 1.5 * rnd.nextDouble();
            for (int i = 0; i < m; i++) {
                p[i * m + j] = (float) (q[j][i] * d);
                pit[i * m + j] = (float) (q[j][i] / d);
            }
        }
        return new float[][] {p, pit};
    }
}
