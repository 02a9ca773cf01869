package lowbit.abq;

import lowbit.Granularity;
import lowbit.calibrate.QuantSpec;
import lowbit.flatquant.QuantScheme;

/**
 * The quantizers of an ABQ-LLM model built on FlatQuant's learned transforms ({@code abq-WxAy-flat}):
 * per-output-channel weights and per-token dynamic activations, both symmetric (FlatQuant's grid,
 * {@link QuantScheme#w6a6()} at 6 bits) or both asymmetric with zero points (ABQ-LLM's default).
 * The same widths and symmetry are used twice: by FlatQuant's calibration as fake quantizers ({@link
 * #calibrationScheme}) and at inference by the bit-plane GEMM ({@link #weightQuantizer}, {@link
 * #activationQuantizer}), so the transforms and clips are learned for the grid that runs.
 *
 * @param weightBits 2..8 (symmetric weights need a sign and a magnitude bit)
 * @param activationBits 2..8
 * @param asymmetric zero points on both sides (ABQ-LLM), or symmetric codes (FlatQuant)
 * @param gptq weight codes by {@link GptqRounding} on the learned-clip grid, instead of round to nearest
 */
public record AbqFlatScheme(int weightBits, int activationBits, boolean asymmetric, boolean gptq) {
    public AbqFlatScheme {
        if (weightBits < 2 || weightBits > 8 || activationBits < 2 || activationBits > 8) {
            throw new IllegalArgumentException("ABQ on FlatQuant transforms takes 2..8-bit weights and activations, got W" + weightBits
                    + "A" + activationBits);
        }
    }

    /** Round-to-nearest weights. */
    public AbqFlatScheme(int weightBits, int activationBits, boolean asymmetric) {
        this(weightBits, activationBits, asymmetric, false);
    }

    /** The fake quantizers FlatQuant's calibration trains against (no KV-cache quantizer: KV16). */
    public QuantScheme calibrationScheme() {
        if (!asymmetric && weightBits == 6 && activationBits == 6) return QuantScheme.w6a6();
        Granularity g = Granularity.PER_ROW;
        QuantSpec w = asymmetric ? QuantSpec.asymmetric(weightBits, g) : QuantSpec.symmetric(weightBits, g);
        QuantSpec a = asymmetric ? QuantSpec.asymmetric(activationBits, g) : QuantSpec.symmetric(activationBits, g);
        return new QuantScheme(widths() + (asymmetric ? " asymmetric" : ""), w, a, null);
    }

    /** The weight quantizer of the bit-plane layers (per output channel, with the learned clip). */
    public WeightQuantizer weightQuantizer() {
        return new WeightQuantizer(weightBits, asymmetric, false, 0);
    }

    /** The per-token activation quantizer of the bit-plane layers (after the learned clip). */
    public ActivationQuantizer activationQuantizer() {
        return new ActivationQuantizer(activationBits, asymmetric);
    }

    /** {@code W6A6}, ... */
    public String widths() {
        return "W" + weightBits + "A" + activationBits;
    }

    @Override
    public String toString() {
        return "abq " + widths() + " on FlatQuant transforms, " + (asymmetric ? "asymmetric" : "symmetric") + " weights and activations, "
                + (gptq ? "GPTQ" : "round-to-nearest") + " weights";
    }
}
