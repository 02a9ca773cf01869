package lowbit.abq;

import lowbit.BitPlanes;

/**
 * Per-token dynamic activation quantization (ABQ-LLM evaluates asymmetric {@code bits}-bit
 * activations with a zero point per token): the Java twin of {@code lowbit_bitplane_quantize},
 * equal to it code for code and scale for scale (see {@link Grid} for the numerics).
 */
public final class ActivationQuantizer {
    private final int bits;
    private final boolean asymmetric;

    /**
     * @param bits 1..8 asymmetric, 2..8 symmetric (a sign and a magnitude bit)
     * @param asymmetric unsigned codes {@code 0..2^bits−1} with a zero point (the default in ABQ-LLM),
     *     or symmetric two's-complement codes {@code ±(2^(bits−1)−1)}
     */
    public ActivationQuantizer(int bits, boolean asymmetric) {
        int lo = asymmetric ? 1 : 2;
        if (bits < lo || bits > 8) {
            throw new IllegalArgumentException((asymmetric ? "asymmetric" : "symmetric") + " activations need " + lo
                    + "..8 bits, got " + bits);
        }
        this.bits = bits;
        this.asymmetric = asymmetric;
    }

    /** Asymmetric per-token quantization with {@code bits} bits. */
    public static ActivationQuantizer asymmetric(int bits) {
        return new ActivationQuantizer(bits, true);
    }

    public static ActivationQuantizer symmetric(int bits) {
        return new ActivationQuantizer(bits, false);
    }

    public int bits() {
        return bits;
    }

    public boolean isAsymmetric() {
        return asymmetric;
    }

    int qmax() {
        return asymmetric ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
    }

    /** Quantizes {@code tokens × k} activations, one scale (and zero point) per token. */
    public IntCodes quantize(float[] x, int tokens, int k) {
        if (tokens <= 0 || k <= 0 || x.length < (long) tokens * k) {
            throw new IllegalArgumentException("x needs " + (long) tokens * k + " values for " + tokens + " x " + k
                    + ", got " + x.length);
        }
        BitPlanes.ld(k);
        float[] xs = x.length == tokens * k ? x : java.util.Arrays.copyOf(x, tokens * k);
        Grid.checkFinite(xs, k, "activations");
        int[] codes = new int[tokens * k];
        float[] scales = new float[tokens];
        int[] zeros = asymmetric ? new int[tokens] : null;
        for (int t = 0; t < tokens; t++) {
            Grid.quantizeSlot(xs, t * k, k, asymmetric, qmax(), codes, scales, zeros, t);
        }
        return new IntCodes(tokens, k, bits, !asymmetric, 0, codes, scales, zeros);
    }

    @Override
    public String toString() {
        return "A" + bits + (asymmetric ? " asymmetric" : " symmetric") + " per token";
    }
}
