package lowbit.abq;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One (weight bits, activation bits[, bit balance]) pair that {@link AbqLinear} runs on the
 * bit-plane GEMM with ABQ-LLM's round-to-nearest quantizers: asymmetric per-output-channel weights
 * ({@link WeightQuantizer}, the 2^bits + 1 level grid with bit balance) and asymmetric per-token
 * activations ({@link ActivationQuantizer}), as {@link AbqConfig#roundToNearest} does. Written
 * {@code W4A8}, {@code W2*A8} (case-insensitive).
 *
 * <p><b>Order.</b> A width is <i>at most as wide as</i> another ({@link #atMostAsWideAs}) when it has
 * no more weight levels (2, 3 with W1*, 4, 5 with W2*, 8, 16, ...) and no more activation bits: the
 * natural partial order (W4A8 and W6A6 are incomparable). {@link #WIDER_LAST} is a total order
 * extending it: binary work (weight planes × activation bits, the number of 1-bit products the GEMM
 * sums), then weight levels, then activation bits; "the widest candidate" is its last element.
 */
public record AbqWidth(int weightBits, int activationBits, boolean bitBalance) {
    private static final Pattern FORM = Pattern.compile("[wW](\\d+)(\\*?)[aA](\\d+)");

    /** Binary work, then weight levels, then activation bits: a total order extending {@link #atMostAsWideAs}. */
    public static final java.util.Comparator<AbqWidth> WIDER_LAST = java.util.Comparator.comparingInt(AbqWidth::binaryWork)
            .thenComparingInt(AbqWidth::weightLevels).thenComparingInt(AbqWidth::activationBits);

    public AbqWidth {
        String name = "W" + weightBits + (bitBalance ? "*" : "") + "A" + activationBits;
        try {
            new WeightQuantizer(weightBits, true, bitBalance, 0);
            new ActivationQuantizer(activationBits, true);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("ABQ width " + name + ": " + e.getMessage(), e);
        }
    }

    /**
     * {@code W<w>A<a>} or {@code W<w>*A<a>} (bit balance), e.g. {@code W4A8}, {@code w2*a8}; a clear
     * exception names anything else, and widths outside the quantizers' ranges (weights 1..8,
     * activations 1..8, bit balance only for 1- and 2-bit weights).
     */
    public static AbqWidth parse(String s) {
        if (s == null) throw new IllegalArgumentException("an ABQ width is required, e.g. W4A8 or W2*A8");
        Matcher m = FORM.matcher(s.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("unknown ABQ width '" + s + "': write W<weight bits>A<activation bits>, e.g. W4A8, "
                    + "or W<bits>*A<bits> for bit-balanced weights (W2*A8)");
        }
        int w, a;
        try {
            w = Integer.parseInt(m.group(1));
            a = Integer.parseInt(m.group(3));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("ABQ width '" + s + "': bit counts out of range", e);
        }
        return new AbqWidth(w, a, !m.group(2).isEmpty());
    }

    /** Comma-separated widths ({@code "w8a8,w4a8,w2*a8"}) or a list of them; none, or one twice, is an error. */
    public static List<AbqWidth> parseList(List<String> items) {
        if (items == null || items.isEmpty()) throw new IllegalArgumentException("at least one ABQ candidate width is required");
        List<AbqWidth> out = new ArrayList<>();
        Set<AbqWidth> seen = new HashSet<>();
        for (String item : items) {
            for (String part : item.split(",")) {
                if (part.isBlank()) throw new IllegalArgumentException("empty ABQ width in candidates " + items);
                AbqWidth w = parse(part);
                if (!seen.add(w)) throw new IllegalArgumentException("ABQ width " + w + " is listed twice in " + items);
                out.add(w);
            }
        }
        return List.copyOf(out);
    }

    /** The weight quantizer {@link AbqLinear} runs at this width (asymmetric, per output channel). */
    public WeightQuantizer weightQuantizer() {
        return new WeightQuantizer(weightBits, true, bitBalance, 0);
    }

    /** The per-token activation quantizer {@link AbqLinear} runs at this width (asymmetric). */
    public ActivationQuantizer activationQuantizer() {
        return ActivationQuantizer.asymmetric(activationBits);
    }

    /** Round to nearest at this width ({@link AbqConfig#roundToNearest}). */
    public AbqConfig config() {
        return AbqConfig.roundToNearest(weightBits, activationBits, bitBalance);
    }

    /** Bit planes of the weight codes: the bits, one more with bit balance. */
    public int weightPlanes() {
        return bitBalance ? weightBits + 1 : weightBits;
    }

    /** Levels of the weight grid: 2^bits, or 2^bits + 1 with bit balance. */
    public int weightLevels() {
        return (1 << weightBits) + (bitBalance ? 1 : 0);
    }

    /** Weight planes × activation planes: the 1-bit products the GEMM sums per output. */
    public int binaryWork() {
        return weightPlanes() * activationBits;
    }

    /** No more weight levels and no more activation bits than {@code other} (the partial order; reflexive). */
    public boolean atMostAsWideAs(AbqWidth other) {
        return weightLevels() <= other.weightLevels() && activationBits <= other.activationBits;
    }

    @Override
    public String toString() {
        return "W" + weightBits + (bitBalance ? "*" : "") + "A" + activationBits;
    }

    /** {@code w4a8}, as in method names. */
    public String id() {
        return toString().toLowerCase(Locale.ROOT);
    }
}
