package lowbit.calibrate;

/** Element-wise ops of the decoder blocks: residual add, SwiGLU gating, ReLU. */
public final class Pointwise {
    private Pointwise() {}

    /** {@code a + b} (same shape). Backward: the gradient passes to both. */
    public static Var add(Tape tape, Var a, Var b) {
        b.requireShape(a.rows, a.cols, "addend");
        double[] y = new double[a.value.length];
        for (int i = 0; i < y.length; i++) y[i] = a.value[i] + b.value[i];
        Var out = tape.result(y, a.rows, a.cols, a, b);
        tape.onBackward(out, () -> {
            for (Var v : new Var[] {a, b}) {
                if (!v.requiresGrad) continue;
                double[] g = v.gradArray();
                for (int i = 0; i < y.length; i++) g[i] += out.grad[i];
            }
        });
        return out;
    }

    /**
     * SwiGLU: {@code silu(gate) ⊙ up} with {@code silu(g) = g·σ(g)}. Backward: {@code dup = dy ⊙
     * silu(gate)}, {@code dgate = dy ⊙ up ⊙ σ(g)·(1 + g·(1 − σ(g)))}.
     */
    public static Var swiGlu(Tape tape, Var gate, Var up) {
        up.requireShape(gate.rows, gate.cols, "up projection");
        int n = gate.value.length;
        double[] sig = new double[n];
        double[] y = new double[n];
        for (int i = 0; i < n; i++) {
            double g = gate.value[i];
            sig[i] = 1.0 / (1.0 + Math.exp(-g));
            y[i] = g * sig[i] * up.value[i];
        }
        Var out = tape.result(y, gate.rows, gate.cols, gate, up);
        tape.onBackward(out, () -> {
            double[] dy = out.grad;
            if (up.requiresGrad) {
                double[] gu = up.gradArray();
                for (int i = 0; i < n; i++) gu[i] += dy[i] * gate.value[i] * sig[i];
            }
            if (gate.requiresGrad) {
                double[] gg = gate.gradArray();
                for (int i = 0; i < n; i++) {
                    double g = gate.value[i];
                    gg[i] += dy[i] * up.value[i] * sig[i] * (1.0 + g * (1.0 - sig[i]));
                }
            }
        });
        return out;
    }

    /** {@code max(x, 0)}. Backward: the gradient where {@code x > 0}. */
    public static Var relu(Tape tape, Var x) {
        double[] y = new double[x.value.length];
        for (int i = 0; i < y.length; i++) y[i] = Math.max(x.value[i], 0.0);
        Var out = tape.result(y, x.rows, x.cols, x);
        tape.onBackward(out, () -> {
            double[] g = x.gradArray();
            for (int i = 0; i < y.length; i++) if (x.value[i] > 0) g[i] += out.grad[i];
        });
        return out;
    }
}
