package lowbit.flatquant;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import lowbit.calibrate.BlockHooks;
import lowbit.calibrate.LlamaBlock;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;
import lowbit.model.LlamaConfig;
import org.junit.jupiter.api.Test;

/**
 * Without quantization the transformed block is the original block's function, to 1e-10 relative
 * in FP64: with the transforms applied during calibration (unfolded), and with every offline part
 * folded into norms, weights and biases ({@link Folding}) and only the online transforms left. GQA
 * (4 heads over 2 KV heads), partial RoPE, random non-orthogonal factors (σ ≠ 1), random scales.
 */
class FoldingExactnessTest {
    // dim 16 -> (4, 4), ffn 24 -> (4, 6), head size 4
    private static final LlamaConfig CONFIG = new LlamaConfig(1, 16, 24, 4, 2, 4, 2, 10000, 1, 1e-5f, 64, 100);
    private final Random rnd = new Random(3);

    @Test
    void unfoldedTransformsPreserveTheBlock() {
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of("attn_q", "ffn_up", "attn_output"));
        BlockTransforms t = transforms(block);
        Var x = Var.constant(TestBlocks.gaussian(rnd, 2 * 6 * 16, 1), 12, 16);
        double[] ref = block.forward(Tape.fp64(), x, 6, BlockHooks.NONE).output().value();
        double[] got = block.forward(Tape.fp64(), x, 6, new FlatQuantHooks(t, null, false, Quantizer.FAKE_QUANT)).output().value();
        double err = TestBlocks.relativeError(got, ref);
        assertTrue(err < 1e-10, "relative error " + err);
    }

    @Test
    void foldedBlockWithOnlineTransformsIsTheOriginalFunction() {
        LlamaBlock block = TestBlocks.block(CONFIG, rnd, List.of("attn_q", "attn_v", "ffn_up", "ffn_down"));
        BlockTransforms t = transforms(block);
        LlamaBlock folded = Folding.fold(block, t);
        Var x = Var.constant(TestBlocks.gaussian(rnd, 2 * 6 * 16, 1), 12, 16);
        double[] ref = block.forward(Tape.fp64(), x, 6, BlockHooks.NONE).output().value();
        double[] got = folded.forward(Tape.fp64(), x, 6, new FlatQuantHooks(t, null, true, Quantizer.FAKE_QUANT)).output().value();
        double err = TestBlocks.relativeError(got, ref);
        assertTrue(err < 1e-10, "relative error " + err);
        // the folded block alone (online transforms dropped) is a different function: the check is not vacuous
        double[] alone = folded.forward(Tape.fp64(), x, 6, BlockHooks.NONE).output().value();
        assertTrue(TestBlocks.relativeError(alone, ref) > 1e-2, "folding changed nothing");
    }

    private BlockTransforms transforms(LlamaBlock block) {
        BlockTransforms t = new BlockTransforms("t.", block, null, QuantScheme.w4a4kv4(4), BlockTransforms.DEFAULT_ALPHA, 11);
        TestBlocks.randomize(t, rnd);
        return t;
    }
}
