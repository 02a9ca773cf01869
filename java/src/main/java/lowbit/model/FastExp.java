package lowbit.model;

/**
 * {@code e^x} in float, several times faster than {@link Math#exp} (which computes in double through
 * a stub call): Cody–Waite range reduction {@code x = n·ln2 + r}, |r| ≤ ln2/2, with ln2 split in
 * two so r keeps full precision, then the degree-7 Taylor polynomial of {@code e^r} (truncation
 * error below 2e-9 relative) and {@code 2^n} built from the exponent bits. Relative error a few
 * float ulps (tested against {@link Math#exp} to 4e-7 over [-87, 88]). Used where the decoder
 * takes millions of exponentials: softmax in attention and SiLU.
 */
final class FastExp {
    private static final float LOG2E = 1.44269504f;
    private static final float LN2_HI = 0.693145752f; // ln2 rounded to 16 significant bits: n·LN2_HI is exact
    private static final float LN2_LO = 1.42860677e-6f;

    private FastExp() {}

    static float exp(float x) {
        if (x < -87.33f) return x != x ? x : 0f; // NaN stays NaN; below the smallest normal result: 0
        if (x > 88.72f) return x != x ? x : Float.POSITIVE_INFINITY;
        float n = (float) Math.rint(x * LOG2E);
        float r = (x - n * LN2_HI) - n * LN2_LO;
        float p = 1.98412698e-4f;
        p = p * r + 1.38888889e-3f;
        p = p * r + 8.33333333e-3f;
        p = p * r + 4.16666667e-2f;
        p = p * r + 1.66666667e-1f;
        p = p * r + 0.5f;
        p = p * r + 1f;
        p = p * r + 1f;
        int e = (int) n;
        if (e < -126) return p * Float.intBitsToFloat((e + 127 + 64) << 23) * 5.42101086e-20f; // 2^-64: subnormal results
        return p * Float.intBitsToFloat((e + 127) << 23);
    }
}
