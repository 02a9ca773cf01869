package lowbit.flatquant;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import lowbit.Granularity;
import lowbit.calibrate.FakeQuant;
import lowbit.calibrate.GradCheck;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Param;
import lowbit.calibrate.QuantSpec;
import lowbit.calibrate.Var;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/**
 * The FlatQuant block against central finite differences through the engine's {@link GradCheck}
 * (FP64, {@code ‖a − n‖₂ ≤ 1e-6·‖n‖₂} per input over up to 60 sampled coordinates): gradients to
 * the block input and to every FlatQuant parameter (9 factors' Cayley and σ parameters, 3 channel
 * scales, 7 weight clips, 6 activation clips) with all quantizers on (W4, A6 per token, K/V INT4
 * asymmetric per head), rounding frozen ({@link GradCheck.FrozenRounding}). GQA 2 heads over 1 KV head.
 */
class FlatQuantGradientTest {
    // dim 12 -> (2, 6), ffn 16 -> (4, 4), head size 6
    private static final LlamaConfig CONFIG = new LlamaConfig(1, 12, 16, 2, 1, 6, 4, 10000, 1, 1e-5f, 64, 100);

    @Test
    void quantizedFlatQuantBlock() {
        Random rnd = new Random(23);
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of("attn_q"));
        QuantScheme scheme = new QuantScheme("W4A6KV4", QuantSpec.symmetric(4, Granularity.PER_ROW), QuantSpec.symmetric(6, Granularity.PER_ROW),
                QuantSpec.grouped(4, false, 6));
        BlockTransforms t = new BlockTransforms("t.", block, null, scheme, 0.3, 9);
        TestBlocks.randomize(t, rnd);
        Map<String, GradCheck.FrozenRounding> frozen = new ConcurrentHashMap<>();
        Quantizer q = (tape, x, spec, clip, key) -> FakeQuant.apply(tape, x, spec, clip,
                frozen.computeIfAbsent(key, k -> new GradCheck.FrozenRounding(x.value().length, spec)));
        FlatQuantHooks hooks = new FlatQuantHooks(t, scheme, false, q);
        Var x = GradCheck.input(rnd, 10, 12, 1);
        List<Var> inputs = new ArrayList<>(List.of(x));
        for (Param p : t.params()) inputs.add(p.var());
        GradCheck.check("flatquant block", inputs, tape -> block.forward(tape, x, 5, hooks).output(), 31);
    }
}
