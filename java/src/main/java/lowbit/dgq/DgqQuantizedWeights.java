package lowbit.dgq;

import java.util.Objects;
import lowbit.Context;
import lowbit.DgqWeights;

/**
 * DGQ weights on the Java heap: {@code n × k} 4-bit codes, integer group scales {@code S2 ∈ [1,
 * 255]} and (asymmetric format) INT8 zero points per group of G columns, one float channel scale per
 * row. {@code W8[j][c] = (q − z)·S2} is an integer with {@code |W8| ≤ 127} (checked here) and the
 * weight it stands for is {@code channelScale[j]·W8[j][c]}.
 */
public final class DgqQuantizedWeights {
    private final int n, k, group;
    private final WeightFormat format;
    private final byte[] codes;
    private final int[] groupScales;
    private final int[] zeroPoints;
    private final float[] channelScales;

    /** Arrays are taken as they are (not copied); throws if a value is out of its range. */
    public DgqQuantizedWeights(int n, int k, int group, WeightFormat format, byte[] codes, int[] groupScales,
                               int[] zeroPoints, float[] channelScales) {
        this.format = Objects.requireNonNull(format, "format");
        if (n < 1 || k < 1 || group < 1 || k % group != 0) {
            throw new IllegalArgumentException("DGQ weights " + n + " x " + k + ": group size " + group + " must divide K");
        }
        int groups = n * (k / group);
        if (codes.length != n * k || groupScales.length != groups || channelScales.length != n
                || (format == WeightFormat.ASYMMETRIC_UINT4) != (zeroPoints != null)
                || (zeroPoints != null && zeroPoints.length != groups)) {
            throw new IllegalArgumentException("DGQ " + format + " weights " + n + " x " + k + " (G=" + group
                    + ") need " + n * k + " codes, " + groups + " group scales, "
                    + (format == WeightFormat.ASYMMETRIC_UINT4 ? groups + " zero points, " : "no zero points, ") + n
                    + " channel scales");
        }
        this.n = n;
        this.k = k;
        this.group = group;
        this.codes = codes;
        this.groupScales = groupScales;
        this.zeroPoints = zeroPoints;
        this.channelScales = channelScales;
        for (int j = 0; j < n; j++) {
            for (int c = 0; c < k; c++) {
                int q = codes[j * k + c];
                int lo = format == WeightFormat.SYMMETRIC_INT4 ? -8 : 0;
                int g = j * (k / group) + c / group;
                int s2 = groupScales[g];
                if (q < lo || q > lo + 15 || s2 < 1 || s2 > 255
                        || (zeroPoints != null && (zeroPoints[g] < -128 || zeroPoints[g] > 127))) {
                    throw new IllegalArgumentException("row " + j + ", column " + c + ": code " + q + ", group scale " + s2
                            + (zeroPoints == null ? "" : ", zero point " + zeroPoints[g]) + " out of range");
                }
                int w8 = w8(j, c);
                if (w8 < -127 || w8 > 127) {
                    throw new IllegalArgumentException("row " + j + ", group " + (c / group) + ", column " + c + ": W8 = "
                            + w8 + " is outside [-127, 127]");
                }
            }
        }
    }

    public int rows() {
        return n;
    }

    public int cols() {
        return k;
    }

    public int group() {
        return group;
    }

    public WeightFormat format() {
        return format;
    }

    /** The code q of row j, column c (signed or unsigned by format). */
    public int code(int j, int c) {
        return codes[j * k + c];
    }

    public int groupScale(int j, int g) {
        return groupScales[j * (k / group) + g];
    }

    /** The zero point of a group (0 for the symmetric format). */
    public int zeroPoint(int j, int g) {
        return zeroPoints == null ? 0 : zeroPoints[j * (k / group) + g];
    }

    public float channelScale(int j) {
        return channelScales[j];
    }

    /** The expanded INT8 weight {@code (q − z)·S2}. */
    public int w8(int j, int c) {
        int g = c / group;
        return (code(j, c) - zeroPoint(j, g)) * groupScale(j, g);
    }

    /** The weights these codes stand for, {@code channelScale[j]·W8[j][c]} (float32), {@code n × k}. */
    public float[] dequantize() {
        float[] w = new float[n * k];
        for (int j = 0; j < n; j++) {
            for (int c = 0; c < k; c++) w[j * k + c] = channelScales[j] * w8(j, c);
        }
        return w;
    }

    /**
     * The codes packed two per byte in {@code lowbit_gemm_dgq}'s layout: row-major, {@code (k + 1) / 2}
     * bytes per row, column c in the low nibble when c is even, the high nibble when odd (signed
     * codes as two's-complement nibbles).
     */
    public byte[] packedCodes() {
        int ldBytes = (k + 1) / 2;
        byte[] packed = new byte[n * ldBytes];
        for (int j = 0; j < n; j++) {
            for (int c = 0; c < k; c++) {
                int nib = codes[j * k + c] & 0xF;
                packed[j * ldBytes + c / 2] |= (byte) ((c & 1) == 0 ? nib : nib << 4);
            }
        }
        return packed;
    }

    /** The integer group scales, row-major {@code n × (k / G)} (a copy). */
    public int[] groupScales() {
        return groupScales.clone();
    }

    /** The zero points, row-major {@code n × (k / G)} (a copy), or null for the symmetric format. */
    public int[] zeroPoints() {
        return zeroPoints == null ? null : zeroPoints.clone();
    }

    /** The per-row float scales (a copy). */
    public float[] channelScales() {
        return channelScales.clone();
    }

    /**
     * Weights from {@link #packedCodes}' layout (nibbles read as signed for {@link
     * WeightFormat#SYMMETRIC_INT4}, unsigned otherwise) and the other arrays; every range is checked
     * as in the constructor, and a packed array of the wrong length is refused.
     */
    public static DgqQuantizedWeights fromPacked(int n, int k, int group, WeightFormat format, byte[] packed, int[] groupScales,
                                                 int[] zeroPoints, float[] channelScales) {
        if (n < 1 || k < 1) throw new IllegalArgumentException("DGQ weights need n, k >= 1, got " + n + " x " + k);
        int ldBytes = (k + 1) / 2;
        if (packed.length != (long) n * ldBytes) {
            throw new IllegalArgumentException("packed DGQ codes of " + n + " x " + k + " need " + (long) n * ldBytes + " bytes, got "
                    + packed.length);
        }
        byte[] codes = new byte[n * k];
        for (int j = 0; j < n; j++) {
            for (int c = 0; c < k; c++) {
                int b = packed[j * ldBytes + c / 2];
                int nib = (c & 1) == 0 ? b & 0xF : (b >> 4) & 0xF;
                codes[j * k + c] = (byte) (format == WeightFormat.SYMMETRIC_INT4 && nib >= 8 ? nib - 16 : nib);
            }
        }
        return new DgqQuantizedWeights(n, k, group, format, codes, groupScales.clone(),
                zeroPoints == null ? null : zeroPoints.clone(), channelScales.clone());
    }

    /** Uploads to {@code ctx} in {@code lowbit_gemm_dgq}'s layout (the native side checks the range again). */
    public DgqWeights upload(Context ctx) {
        byte[] packed = packedCodes();
        byte[] s2 = new byte[groupScales.length];
        for (int i = 0; i < s2.length; i++) s2[i] = (byte) groupScales[i];
        byte[] z = null;
        if (zeroPoints != null) {
            z = new byte[zeroPoints.length];
            for (int i = 0; i < z.length; i++) z[i] = (byte) zeroPoints[i];
        }
        return ctx.uploadDgq(packed, s2, z, channelScales.clone(), n, k, group);
    }
}
