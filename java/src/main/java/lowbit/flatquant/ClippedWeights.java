package lowbit.flatquant;

import lowbit.quant.Gptq;

/**
 * FlatQuant's weight quantizer: per output channel, symmetric, with the learned clip pair of that
 * channel, exactly the calibration's fake quantizer ({@link lowbit.calibrate.FakeQuant}) in FP64:
 * for row r with extremes {@code min ≤ max}, {@code hi = σ(γ_r)·max}, {@code lo = σ(β_r)·min},
 * {@code s = max(|lo|, |hi|) / qmax} (floored at 1e-10), {@code q = clamp(rint(w / s), −2^(b−1),
 * 2^(b−1) − 1)} (the grid includes {@code −8} / {@code −128}, which the GEMM's S4/S8 operands
 * hold). The layer multiplies by {@code (float) s}. The codes are rounded to nearest ({@link #quantize})
 * or chosen by GPTQ on the same scales ({@link #gptq}).
 *
 * @param codes {@code rows × cols} integer codes
 * @param scales one float32 scale per row
 */
public record ClippedWeights(int bits, int rows, int cols, int[] codes, float[] scales) {
    static final double SCALE_FLOOR = 1e-10;

    /**
     * Quantizes {@code w} ({@code rows × cols}, row-major) to {@code bits} (4 or 8) with clip factors
     * {@code clip} ({@code rows × 2}: {@code σ(γ_r), σ(β_r)}; null for none): round to nearest.
     */
    public static ClippedWeights quantize(double[] w, int rows, int cols, int bits, double[] clip) {
        double[] s = rowScales(w, rows, cols, bits, clip);
        int qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;
        int[] q = new int[w.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) q[r * cols + c] = (int) Math.max(qmin, Math.min(qmax, Math.rint(w[r * cols + c] / s[r])));
        }
        return new ClippedWeights(bits, rows, cols, q, toFloat(s));
    }

    /**
     * As {@link #quantize}, with the same per-row scales (the learned clip's), but the codes chosen by
     * GPTQ ({@link Gptq}) for inputs whose Hessian is {@code hessian} ({@code cols × cols}, {@code XᵀX}
     * of the layer's inputs as the GEMM sees them): each column's rounding error is compensated on the
     * columns after it. Same packed format as the round-to-nearest weights.
     */
    public static ClippedWeights gptq(double[] w, int rows, int cols, int bits, double[] clip, double[] hessian, Gptq.Options options) {
        double[] s = rowScales(w, rows, cols, bits, clip);
        return new ClippedWeights(bits, rows, cols, Gptq.quantize(w, rows, cols, hessian, s, bits, options), toFloat(s));
    }

    /**
     * The per-row scales in FP64: {@code s = max(|σ(β_r)·min|, |σ(γ_r)·max|) / qmax}, floored at
     * {@link #SCALE_FLOOR}; checks shapes and finiteness.
     */
    static double[] rowScales(double[] w, int rows, int cols, int bits, double[] clip) {
        if (bits != 4 && bits != 8) throw new IllegalArgumentException("weights are quantized to 4 or 8 bits, got " + bits);
        if (w == null || rows < 1 || cols < 1 || w.length != (long) rows * cols) {
            throw new IllegalArgumentException("weights must be " + rows + " x " + cols + ", got " + (w == null ? "none" : w.length + " values"));
        }
        if (clip != null && clip.length != 2 * rows) throw new IllegalArgumentException("clip factors: " + clip.length + " values for " + rows + " rows (need 2 per row)");
        int qmax = (1 << (bits - 1)) - 1;
        double[] scales = new double[rows];
        for (int r = 0; r < rows; r++) {
            double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                double v = w[r * cols + c];
                if (!Double.isFinite(v)) throw new IllegalArgumentException("weight " + v + " at row " + r + ", column " + c + " is not finite");
                min = Math.min(min, v);
                max = Math.max(max, v);
            }
            double hi = (clip == null ? 1 : clip[2 * r]) * max, lo = (clip == null ? 1 : clip[2 * r + 1]) * min;
            double s = Math.max(Math.abs(lo), Math.abs(hi)) / qmax;
            if (!(s >= SCALE_FLOOR)) s = SCALE_FLOOR;
            scales[r] = s;
        }
        return scales;
    }

    private static float[] toFloat(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) f[i] = (float) a[i];
        return f;
    }

    /**
     * The inverse of {@link #packed}: weights from their packed codes (S8 bytes, or S4 two per byte
     * with rows padded to even) and float32 scales, e.g. read back from a file. Scales must be
     * finite and positive.
     */
    public static ClippedWeights fromPacked(int bits, int rows, int cols, byte[] packed, float[] scales) {
        if (bits != 4 && bits != 8) throw new IllegalArgumentException("weights are quantized to 4 or 8 bits, got " + bits);
        if (rows < 1 || cols < 1) throw new IllegalArgumentException("weights must be at least 1 x 1, got " + rows + " x " + cols);
        int ld = bits == 8 ? cols : cols + (cols & 1);
        long bytes = bits == 8 ? (long) rows * cols : (long) rows * ld / 2;
        if (packed == null || packed.length != bytes) {
            throw new IllegalArgumentException(rows + " x " + cols + " INT" + bits + " weights take " + bytes + " bytes, got " + (packed == null ? "none" : packed.length));
        }
        if (scales == null || scales.length != rows) throw new IllegalArgumentException("weights need " + rows + " scales, got " + (scales == null ? "none" : scales.length));
        for (int r = 0; r < rows; r++) {
            if (!(scales[r] > 0 && Float.isFinite(scales[r]))) throw new IllegalArgumentException("weight scale " + r + " is " + scales[r] + ", must be finite and > 0");
        }
        int[] q = new int[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (bits == 8) {
                    q[r * cols + c] = packed[r * cols + c];
                } else {
                    int b = packed[(r * ld + c) / 2];
                    q[r * cols + c] = (c & 1) == 0 ? (byte) (b << 4) >> 4 : (byte) b >> 4;
                }
            }
        }
        return new ClippedWeights(bits, rows, cols, q, scales.clone());
    }

    /** The codes in lowbit.h layout: S8 bytes, or S4 two per byte (element c in byte c/2, low nibble when c is even; rows padded to even). */
    public byte[] packed() {
        if (bits == 8) {
            byte[] b = new byte[codes.length];
            for (int i = 0; i < b.length; i++) b[i] = (byte) codes[i];
            return b;
        }
        int ld = cols + (cols & 1);
        byte[] b = new byte[rows * ld / 2];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int nib = codes[r * cols + c] & 0xF;
                int at = (r * ld + c) / 2;
                b[at] |= (byte) ((c & 1) == 0 ? nib : nib << 4);
            }
        }
        return b;
    }
}
