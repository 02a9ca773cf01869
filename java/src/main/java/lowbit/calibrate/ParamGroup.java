package lowbit.calibrate;

import java.util.List;

/** Parameters that share a learning rate and a (decoupled) weight decay in {@link AdamW}. */
public record ParamGroup(String name, double learningRate, double weightDecay, List<Param> params) {
    public ParamGroup {
        if (!(learningRate > 0) || !Double.isFinite(learningRate)) throw new IllegalArgumentException(name + ": learning rate " + learningRate + " must be > 0");
        if (!(weightDecay >= 0) || !Double.isFinite(weightDecay)) throw new IllegalArgumentException(name + ": weight decay " + weightDecay + " must be >= 0");
        params = List.copyOf(params);
    }
}
