package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import lowbit.io.GgufFile;
import lowbit.io.RealModelFixture;
import lowbit.model.KvCache;
import lowbit.model.LlamaConfig;
import lowbit.model.LlamaModel;
import org.junit.jupiter.api.Test;

/**
 * The differentiable LLaMA block is the model's block: on the real model, embedding → the 30
 * blocks (read from the GGUF, and for block 0 also from the loaded model) → final RMSNorm matches
 * {@link LlamaModel#forwardHidden} to 1e-4 relative (FP32 vs the block's double element-wise math).
 */
class LlamaBlockReferenceTest {
    @Test
    void blocksReproduceTheModelsForwardPass() throws IOException {
        GgufFile g = RealModelFixture.gguf();
        LlamaModel model = LlamaModel.load(g);
        LlamaConfig c = model.config();
        int[] tokens = {504, 3458, 282, 260, 3373, 7, 2020, 28, 314, 1, 4875, 30, 281};
        float[] reference = model.forwardHidden(model.newKvCache(tokens.length), tokens);
        float[] embedding = g.readFloats("token_embd.weight");
        double[] x = new double[tokens.length * c.dim()];
        for (int t = 0; t < tokens.length; t++) {
            for (int i = 0; i < c.dim(); i++) x[t * c.dim() + i] = embedding[tokens[t] * c.dim() + i];
        }
        RotaryEmbedding rope = RotaryEmbedding.of(c, null);
        Var h = Var.constant(x, tokens.length, c.dim());
        double[] block0FromModel = LlamaBlock.fromModel(model, 0, rope).forward(Tape.fp64(), h, tokens.length, BlockHooks.NONE).output().value;
        for (int b = 0; b < c.blockCount(); b++) {
            h = LlamaBlock.fromGguf(g, c, b, rope).forward(Tape.fp32(), h, tokens.length, BlockHooks.NONE).output();
            if (b == 0) assertTrue(relErr(h.value, block0FromModel) < 1e-5, "block 0 from GGUF vs from the model");
        }
        double[] out = RmsNorm.apply(Tape.fp64(), h, Var.constant(model.normWeight("output_norm"), 1, c.dim()), c.rmsEps()).value;
        double[] ref = new double[reference.length];
        for (int i = 0; i < ref.length; i++) ref[i] = reference[i];
        double err = relErr(out, ref);
        assertTrue(err < 1e-4, "relative error vs LlamaModel " + err);
    }

    private static double relErr(double[] a, double[] b) {
        double e = 0, n = 0;
        for (int i = 0; i < a.length; i++) {
            e += (a[i] - b[i]) * (a[i] - b[i]);
            n += b[i] * b[i];
        }
        return Math.sqrt(e / n);
    }
}
