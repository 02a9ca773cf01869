package lowbit.abq;

/**
 * Round-to-nearest weight quantization as ABQ-LLM does it (per output channel, or per group of
 * consecutive input columns), with {@link Grid}'s float32 numerics:
 *
 * <ul>
 *   <li>asymmetric (default): codes {@code 0..qmax}, a zero point per slot, {@code qmax = 2^bits − 1};
 *   <li>symmetric: two's-complement codes {@code −qmax..qmax}, {@code qmax = 2^(bits−1) − 1};
 *   <li>bit balance ({@code bits ≤ 2}, ABQ-LLM's W2*): one more level on each side of the grid's
 *       balance point — {@code qmax = 2^bits} asymmetric (codes 0..4 for 2 bits), {@code qmax =
 *       2^(bits−1)} symmetric (codes {−2..2}, or the ternary {−1, 0, 1} for 1 bit). 2^bits + 1
 *       levels need {@code bits + 1} planes: W2* costs 3 planes (the binary work of W3).
 * </ul>
 */
public final class WeightQuantizer {
    private final int bits;
    private final boolean asymmetric;
    private final boolean bitBalance;
    private final int group;

    /**
     * @param bits nominal bit width, 1..8 (symmetric without bit balance: 2..8)
     * @param asymmetric zero points (unsigned codes) or symmetric signed codes
     * @param bitBalance the 2^bits + 1 level grid; only for bits ≤ 2
     * @param group 0 for one scale per output channel, else the columns per scale (must divide K)
     */
    public WeightQuantizer(int bits, boolean asymmetric, boolean bitBalance, int group) {
        if (bits < 1 || bits > 8) {
            throw new IllegalArgumentException("weights need 1..8 bits, got " + bits);
        }
        if (bitBalance && bits > 2) {
            throw new IllegalArgumentException("bit balance is defined for 1- and 2-bit weights, got " + bits + " bits");
        }
        if (!asymmetric && !bitBalance && bits < 2) {
            throw new IllegalArgumentException("symmetric 1-bit weights have no level but 0: use asymmetric or bit balance");
        }
        if (group < 0) {
            throw new IllegalArgumentException("group must be 0 (per channel) or positive, got " + group);
        }
        this.bits = bits;
        this.asymmetric = asymmetric;
        this.bitBalance = bitBalance;
        this.group = group;
    }

    /** Asymmetric per-channel {@code bits}-bit weights (ABQ-LLM's default). */
    public static WeightQuantizer perChannel(int bits) {
        return new WeightQuantizer(bits, true, false, 0);
    }

    /** Bit-balanced symmetric weights: {−2..2}·s for 2 bits (W2*), {−1, 0, 1}·s for 1 bit. */
    public static WeightQuantizer bitBalanced(int bits) {
        return new WeightQuantizer(bits, false, true, 0);
    }

    public int bits() {
        return bits;
    }

    public boolean isAsymmetric() {
        return asymmetric;
    }

    public boolean isBitBalanced() {
        return bitBalance;
    }

    public int group() {
        return group;
    }

    /** Bit planes the codes occupy: {@code bits}, or {@code bits + 1} with bit balance. */
    public int planes() {
        return bitBalance ? bits + 1 : bits;
    }

    int qmax() {
        if (asymmetric) {
            return bitBalance ? 1 << bits : (1 << bits) - 1;
        }
        return bitBalance ? 1 << (bits - 1) : (1 << (bits - 1)) - 1;
    }

    /** Quantizes {@code w} ({@code n × k}, one output channel per row). */
    public IntCodes quantize(float[] w, int n, int k) {
        if (n <= 0 || k <= 0 || w.length != (long) n * k) {
            throw new IllegalArgumentException("weights must hold " + (long) n * k + " values for " + n + " x " + k
                    + ", got " + w.length);
        }
        if (group != 0 && k % group != 0) {
            throw new IllegalArgumentException("group " + group + " does not divide K=" + k);
        }
        Grid.checkFinite(w, k, "weights");
        int g = group == 0 ? k : group;
        int slots = n * (k / g);
        int[] codes = new int[n * k];
        float[] scales = new float[slots];
        int[] zeros = asymmetric ? new int[slots] : null;
        for (int s = 0; s < slots; s++) {
            Grid.quantizeSlot(w, s * g, g, asymmetric, qmax(), codes, scales, zeros, s);
        }
        return new IntCodes(n, k, planes(), !asymmetric, group, codes, scales, zeros);
    }

    @Override
    public String toString() {
        return "W" + bits + (bitBalance ? "*" : "") + (asymmetric ? " asymmetric" : " symmetric")
                + (group == 0 ? " per channel" : " G" + group) + " (" + planes() + " planes)";
    }
}
