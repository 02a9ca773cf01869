package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import lowbit.Granularity;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.QuantSpec;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/** Transform sizes on the real model's shapes, parameter layout, and refusals of bad input. */
class TransformPlacementTest {
    private final Random rnd = new Random(5);

    @Test
    void smolLm2ShapesGetTheRuleSizes() {
        // SmolLM2-135M: dim 576, ffn 1536, 9 heads over 3 KV heads of 64
        LlamaConfig c = new LlamaConfig(1, 576, 1536, 9, 3, 64, 64, 100000, 1, 1e-5f, 2048, 100);
        LlamaBlock block = TestBlocks.block(c, rnd, List.of());
        BlockTransforms t = new BlockTransforms("b.", block, null, QuantScheme.w4a4kv4(64), 0.3, 1);
        int[][] k = t.kroneckerSizes();
        assertArrayEquals(new int[] {24, 24}, k[0]);
        assertArrayEquals(new int[] {24, 24}, k[1]);
        assertArrayEquals(new int[] {32, 48}, k[2]);
        assertArrayEquals(new int[] {9, 64, 64}, t.headFactorSizes());
        // 9 factors x (u, v, sigma) + 3 scales; 7 weight clips + 6 activation clips (4 linear inputs, K, V)
        assertEquals(30, t.transformParams().size());
        assertEquals(13, t.clipParams().size());
        assertEquals(576, t.clipParams().get(0).values().length / 2, "attn_q: one clip pair per output channel");
        assertEquals(11, new BlockTransforms("b.", block, null, QuantScheme.w4a8(), 0.3, 1).clipParams().size(), "no K/V clips at KV16");
    }

    @Test
    void badInputIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> BlockTransforms.decompose(10, "x"), "10 = 2 mod 4 has no decomposition");
        assertArrayEquals(new int[] {86, 128}, BlockTransforms.decompose(11008, "x"));
        LlamaConfig odd = new LlamaConfig(1, 16, 22, 4, 2, 4, 4, 10000, 1, 1e-5f, 64, 100);
        LlamaBlock block = TestBlocks.block(odd, rnd, List.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new BlockTransforms("b.", block, null, QuantScheme.w4a4(), 0.3, 1));
        assertTrue(e.getMessage().contains("intermediate size 22"), e.getMessage());
        LlamaConfig ok = new LlamaConfig(1, 16, 24, 4, 2, 4, 4, 10000, 1, 1e-5f, 64, 100);
        LlamaBlock b2 = TestBlocks.block(ok, rnd, List.of());
        assertThrows(IllegalArgumentException.class, () -> new BlockTransforms("b.", b2, null, QuantScheme.w4a4kv4(3), 0.3, 1), "KV group must divide the KV width");
        assertThrows(IllegalArgumentException.class, () -> new FlatQuantMethod(QuantScheme.w4a8(), 1.5, 5e-3, 5e-2, true));
        assertThrows(IllegalArgumentException.class, () -> new QuantScheme("x", null, QuantSpec.symmetric(4, Granularity.PER_ROW), null));
        LlamaBlock vBias = TestBlocks.block(ok, rnd, List.of("attn_v"));
        assertThrows(IllegalArgumentException.class, () -> FlatQuantMethod.authors(QuantScheme.w4a8()).prepare(0, vBias, null, 1));
    }
}
