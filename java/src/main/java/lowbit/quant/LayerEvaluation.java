package lowbit.quant;

import java.util.EnumMap;
import java.util.Map;
import lowbit.model.FloatLinear;
import lowbit.model.LinearOp;

/**
 * What {@link FlattenQuantizer} measured for one linear layer: its best {@link PrecisionSetting} at
 * INT4, INT8 and FP16. The bit-width policy chooses among them; {@link #build} makes the layer.
 *
 * <p>Compute is counted per token as {@code 2 * N * K'}, with K' the expanded depth of the chosen
 * setting (K for FP16).
 */
public final class LayerEvaluation {
    private final String name;
    private final int inFeatures;
    private final int outFeatures;
    private final Map<Precision, PrecisionSetting> settings;
    private final float[] weights;
    private final float[] bias;
    private final float[] channelAbsMax;
    private final QuantConfig config;

    /** {@code weights}, {@code channelAbsMax} and {@code config} may be null for a layer that is only ranked. */
    LayerEvaluation(String name, int inFeatures, int outFeatures, Map<Precision, PrecisionSetting> settings,
                    float[] weights, float[] bias, float[] channelAbsMax, QuantConfig config) {
        for (Precision p : Precision.values()) {
            if (!settings.containsKey(p)) {
                throw new IllegalArgumentException("layer '" + name + "' has no setting for " + p);
            }
        }
        this.name = name;
        this.inFeatures = inFeatures;
        this.outFeatures = outFeatures;
        this.settings = new EnumMap<>(settings);
        this.weights = weights;
        this.bias = bias;
        this.channelAbsMax = channelAbsMax;
        this.config = config;
    }

    public String name() {
        return name;
    }

    public int inFeatures() {
        return inFeatures;
    }

    public int outFeatures() {
        return outFeatures;
    }

    public PrecisionSetting setting(Precision p) {
        return settings.get(p);
    }

    /** {@code 2 * N * K'} of the setting at {@code p}. */
    public long flopsPerToken(Precision p) {
        return 2L * outFeatures * settings.get(p).expandedFeatures();
    }

    /**
     * The executable layer at {@code p}: a {@link QuantizedLinear} for INT4/INT8 (static or dynamic
     * activation scale per the config), the original float weights for FP16.
     */
    public LinearOp build(Precision p) {
        if (weights == null) {
            throw new IllegalStateException("layer '" + name + "' was evaluated without weights and cannot be built");
        }
        if (!p.isInteger()) {
            return new FloatLinear(weights, bias, outFeatures, inFeatures);
        }
        PrecisionSetting s = settings.get(p);
        return QuantizedLinear.create(weights, bias, outFeatures, inFeatures, s.plan(), p.bits(), p.bits(),
                config.weightGranularity() == QuantConfig.WeightGranularity.PER_OUTPUT_CHANNEL, s.clipRatios(),
                config.activationScale(), s.plan().flattenedAbsMax(channelAbsMax));
    }
}
