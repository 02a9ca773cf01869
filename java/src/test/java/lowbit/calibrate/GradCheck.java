package lowbit.calibrate;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import java.util.function.Function;

/**
 * Gradient checks against central finite differences in FP64. The scalar checked is {@code L =
 * Σ f(θ) ⊙ R} for a fixed random R (so every output element matters), built on a fresh FP64 tape
 * per evaluation. For every input, on all coordinates (or a random sample of {@value #MAX_COORDS}),
 * the analytic gradient a and the estimate {@code n = (L(θ+h) − L(θ−h))/2h}, {@code h = 1e-6·max(1,
 * |θ|)}, must satisfy {@code ‖a − n‖₂ ≤ tol·‖n‖₂} (tol {@value #TOL} unless stated) and ‖n‖₂ > 0.
 */
public final class GradCheck {
    public static final double TOL = 1e-6;
    static final int MAX_COORDS = 60;

    private GradCheck() {}

    public static Var input(Random rnd, int rows, int cols, double scale) {
        double[] v = new double[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = rnd.nextGaussian() * scale;
        return new Var(v, rows, cols, true);
    }

    public static void check(String what, List<Var> inputs, Function<Tape, Var> f, long seed) {
        check(what, inputs, f, seed, TOL);
    }

    public static void check(String what, List<Var> inputs, Function<Tape, Var> f, long seed, double tol) {
        Random rnd = new Random(seed);
        Var probe = f.apply(Tape.fp64());
        double[] weights = new double[probe.value.length];
        for (int i = 0; i < weights.length; i++) weights[i] = rnd.nextGaussian();
        for (Var v : inputs) v.zeroGrad();
        Tape tape = Tape.fp64();
        tape.backward(weighted(tape, f.apply(tape), weights));
        for (int vi = 0; vi < inputs.size(); vi++) {
            Var v = inputs.get(vi);
            double[] analytic = v.gradArray().clone();
            int[] coords = coords(v.value.length, rnd);
            double diff = 0, norm = 0, worst = -1;
            String worstAt = "";
            for (int c : coords) {
                double saved = v.value[c];
                double h = 1e-6 * Math.max(1, Math.abs(saved));
                v.value[c] = saved + h;
                double plus = eval(f, weights);
                v.value[c] = saved - h;
                double minus = eval(f, weights);
                v.value[c] = saved;
                double numeric = (plus - minus) / (2 * h);
                diff += (analytic[c] - numeric) * (analytic[c] - numeric);
                if (Math.abs(analytic[c] - numeric) > worst) {
                    worst = Math.abs(analytic[c] - numeric);
                    worstAt = " (worst at " + c + ": analytic " + analytic[c] + ", numeric " + numeric + ")";
                }
                norm += numeric * numeric;
            }
            double rel = Math.sqrt(diff) / Math.sqrt(norm);
            assertTrue(norm > 0, what + ", input " + vi + ": zero numeric gradient, the check would be vacuous");
            assertTrue(rel <= tol, what + ", input " + vi + ": relative gradient error " + rel + " > " + tol + worstAt);
        }
    }

    private static double eval(Function<Tape, Var> f, double[] weights) {
        Tape t = Tape.fp64();
        return weighted(t, f.apply(t), weights).scalar();
    }

    private static int[] coords(int n, Random rnd) {
        if (n <= MAX_COORDS) return java.util.stream.IntStream.range(0, n).toArray();
        return rnd.ints(0, n).distinct().limit(MAX_COORDS).toArray();
    }

    /** {@code Σ out ⊙ w} as a graph op. */
    static Var weighted(Tape tape, Var out, double[] w) {
        double s = 0;
        for (int i = 0; i < w.length; i++) s += out.value[i] * w[i];
        Var r = tape.result(new double[] {s}, 1, 1, out);
        tape.onBackward(r, () -> {
            double[] g = out.gradArray();
            for (int i = 0; i < w.length; i++) g[i] += r.grad[0] * w[i];
        });
        return r;
    }

    /**
     * Rounding frozen at its first use per slot: later calls return {@code v + c} with {@code c =
     * rint(v₀) − v₀}, which makes the STE gradient the exact derivative. An element (slot below
     * {@code elements}) whose level is the grid's lowest or highest is moved 0.25 of a level inward,
     * so it sits inside the clamp instead of exactly on its kink (where a central difference would
     * average the two one-sided derivatives); zero-point slots are not moved.
     */
    public static final class FrozenRounding implements FakeQuant.Rounding {
        private final java.util.Map<Integer, Double> residual = new java.util.concurrent.ConcurrentHashMap<>();
        private final int elements;
        private final int qmin;
        private final int qmax;

        public FrozenRounding(int elements, QuantSpec spec) {
            this.elements = elements;
            this.qmin = spec.qmin();
            this.qmax = spec.qmax();
        }

        @Override
        public double round(double v, int slot) {
            return v + residual.computeIfAbsent(slot, s -> {
                double level = Math.rint(v);
                double inward = s >= elements ? 0 : level == qmin ? 0.25 : level == qmax ? -0.25 : 0;
                return level - v + inward;
            });
        }
    }
}
