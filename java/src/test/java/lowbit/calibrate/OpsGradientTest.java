package lowbit.calibrate;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Every op's backward rule against central finite differences (FP64, bound {@link GradCheck#TOL}), odd shapes. */
class OpsGradientTest {
    private final Random rnd = new Random(11);

    @Test
    void linearWithBias() {
        Var x = GradCheck.input(rnd, 7, 13, 1), w = GradCheck.input(rnd, 5, 13, 0.5), b = GradCheck.input(rnd, 1, 5, 1);
        GradCheck.check("linear", List.of(x, w, b), t -> Linear.apply(t, x, w, b), 1);
    }

    @Test
    void matrixOps() {
        Var a = GradCheck.input(rnd, 5, 7, 1), b = GradCheck.input(rnd, 7, 3, 1), s = GradCheck.input(rnd, 1, 7, 1);
        for (int i = 0; i < 7; i++) s.value[i] = 0.5 + Math.abs(s.value[i]);
        GradCheck.check("matmul", List.of(a, b), t -> MatrixOps.matmul(t, a, b), 2);
        GradCheck.check("transpose", List.of(a), t -> MatrixOps.transpose(t, a), 3);
        GradCheck.check("scale columns", List.of(a, s), t -> MatrixOps.scaleColumns(t, a, s, false), 4);
        GradCheck.check("divide columns", List.of(a, s), t -> MatrixOps.scaleColumns(t, a, s, true), 5);
        GradCheck.check("reciprocal", List.of(s), t -> MatrixOps.reciprocal(t, s), 6);
        Var u = GradCheck.input(rnd, 5, 1, 1), v = GradCheck.input(rnd, 1, 7, 1);
        GradCheck.check("add outer", List.of(a, u, v), t -> MatrixOps.addOuter(t, a, u, v), 7);
    }

    @Test
    void norms() {
        Var x = GradCheck.input(rnd, 6, 11, 2), w = GradCheck.input(rnd, 1, 11, 1), b = GradCheck.input(rnd, 1, 11, 1);
        GradCheck.check("rmsnorm", List.of(x, w), t -> RmsNorm.apply(t, x, w, 1e-5), 8);
        GradCheck.check("layernorm", List.of(x, w, b), t -> LayerNorm.apply(t, x, w, b, 1e-5), 9);
    }

    @Test
    void pointwise() {
        Var a = GradCheck.input(rnd, 3, 17, 2), b = GradCheck.input(rnd, 3, 17, 2);
        GradCheck.check("add", List.of(a, b), t -> Pointwise.add(t, a, b), 10);
        GradCheck.check("add to itself", List.of(a), t -> Pointwise.add(t, a, a), 11);
        GradCheck.check("swiglu", List.of(a, b), t -> Pointwise.swiGlu(t, a, b), 12);
        GradCheck.check("relu", List.of(a), t -> Pointwise.relu(t, a), 13);
    }

    @Test
    void rope() {
        RotaryEmbedding rope = new RotaryEmbedding(6, 4, 10000, 1, new float[] {1f, 2.5f});
        Var x = GradCheck.input(rnd, 10, 18, 1); // 2 sequences of 5, 3 heads of 6
        GradCheck.check("rope", List.of(x), t -> rope.apply(t, x, 5), 14);
    }

    @Test
    void groupedQueryAttention() {
        int seq = 5, seqs = 2, heads = 4, kv = 2, hd = 3;
        Var q = GradCheck.input(rnd, seq * seqs, heads * hd, 1), k = GradCheck.input(rnd, seq * seqs, kv * hd, 1), v = GradCheck.input(rnd, seq * seqs, kv * hd, 1);
        GradCheck.check("attention maps", List.of(q, k), t -> CausalAttention.probabilities(t, q, k, heads, kv, hd, seq), 15);
        Var p = new Var(CausalAttention.probabilities(Tape.fp64(), q, k, heads, kv, hd, seq).value.clone(), seq * seqs * heads, seq, true);
        GradCheck.check("attention apply", List.of(p, v), t -> CausalAttention.apply(t, p, v, heads, kv, hd, seq), 16);
        GradCheck.check("attention", List.of(q, k, v),
                t -> CausalAttention.apply(t, CausalAttention.probabilities(t, q, k, heads, kv, hd, seq), v, heads, kv, hd, seq), 17);
    }

    @Test
    void kroneckerAndCayley() {
        Var x = GradCheck.input(rnd, 7, 15, 1), a = GradCheck.input(rnd, 3, 3, 1), b = GradCheck.input(rnd, 5, 5, 1);
        GradCheck.check("kronecker", List.of(x, a, b), t -> Kronecker.apply(t, x, a, b), 18);
        Var r = GradCheck.input(rnd, 5, 5, 0.3);
        GradCheck.check("cayley", List.of(r), t -> Cayley.apply(t, r), 19);
    }

    @Test
    void losses() {
        Var a = GradCheck.input(rnd, 4, 9, 1), b = GradCheck.input(rnd, 4, 9, 1);
        GradCheck.check("mse", List.of(a, b), t -> Losses.mse(t, a, b), 20);
        for (int i = 0; i < b.value.length; i++) b.value[i] = a.value[i] + 0.3 * b.value[i]; // positive mean cosine
        GradCheck.check("neg log cosine", List.of(a, b), t -> Losses.negLogCosine(t, a, b), 21);
        Var p = softmaxRows(GradCheck.input(rnd, 4, 6, 1)), q = softmaxRows(GradCheck.input(rnd, 4, 6, 1));
        GradCheck.check("symmetric KL", List.of(p, q), t -> Losses.symmetricKl(t, p, q), 22);
    }

    private static Var softmaxRows(Var x) {
        for (int r = 0; r < x.rows; r++) {
            double sum = 0;
            for (int c = 0; c < x.cols; c++) sum += x.value[r * x.cols + c] = Math.exp(x.value[r * x.cols + c]);
            for (int c = 0; c < x.cols; c++) x.value[r * x.cols + c] /= sum;
        }
        return x;
    }
}
