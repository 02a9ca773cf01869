package lowbit.calibrate;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW (Loshchilov and Hutter; PyTorch's {@code torch.optim.AdamW} update) over parameter groups,
 * each with its own learning rate and decoupled weight decay:
 *
 * <pre>
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)
 * </pre>
 *
 * with {@code lr} the group's rate times the schedule factor passed to {@link #step}.
 */
public final class AdamW {
    private final List<ParamGroup> groups;
    private final double beta1;
    private final double beta2;
    private final double eps;
    private final Map<Param, double[][]> state = new IdentityHashMap<>();
    private int steps;

    /** β1 = 0.9, β2 = 0.999, ε = 1e-8 (the PyTorch defaults the authors use). */
    public AdamW(List<ParamGroup> groups) {
        this(groups, 0.9, 0.999, 1e-8);
    }

    public AdamW(List<ParamGroup> groups, double beta1, double beta2, double eps) {
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0)) {
            throw new IllegalArgumentException("bad AdamW constants β1=" + beta1 + " β2=" + beta2 + " ε=" + eps);
        }
        this.groups = List.copyOf(groups);
        for (ParamGroup g : this.groups) {
            for (Param p : g.params()) {
                if (state.put(p, new double[2][p.var().value.length]) != null) throw new IllegalArgumentException(p.name() + " is in two groups");
            }
        }
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
    }

    /** Every parameter, group by group. */
    public List<Param> params() {
        List<Param> all = new ArrayList<>();
        for (ParamGroup g : groups) all.addAll(g.params());
        return all;
    }

    public void zeroGrad() {
        for (Param p : params()) p.zeroGrad();
    }

    /** One update with the accumulated gradients, learning rates scaled by {@code lrFactor}. */
    public void step(double lrFactor) {
        if (!(lrFactor >= 0) || !Double.isFinite(lrFactor)) throw new IllegalArgumentException("learning-rate factor " + lrFactor);
        steps++;
        double bc1 = 1 - Math.pow(beta1, steps), bc2 = 1 - Math.pow(beta2, steps);
        for (ParamGroup group : groups) {
            double lr = group.learningRate() * lrFactor;
            for (Param p : group.params()) {
                double[] w = p.var().value, g = p.var().gradArray();
                double[][] mv = state.get(p);
                for (int i = 0; i < w.length; i++) {
                    if (!Double.isFinite(g[i])) throw new ArithmeticException(p.name() + ": gradient " + g[i] + " at index " + i);
                    w[i] *= 1 - lr * group.weightDecay();
                    mv[0][i] = beta1 * mv[0][i] + (1 - beta1) * g[i];
                    mv[1][i] = beta2 * mv[1][i] + (1 - beta2) * g[i] * g[i];
                    w[i] -= lr / bc1 * mv[0][i] / (Math.sqrt(mv[1][i]) / Math.sqrt(bc2) + eps);
                }
            }
        }
    }

    public int steps() {
        return steps;
    }
}
