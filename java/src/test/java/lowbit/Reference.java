package lowbit;

/**
 * Java references for liblowbit's arithmetic: the exact float32 quantization of {@code lowbit.h}
 * (bit-for-bit), exact integer GEMMs in long, and the epilogue both in float32 steps (bit-exact) and
 * in FP64 (for relative-error bounds).
 */
final class Reference {
    private Reference() {}

    /** Quantized values (one int per element, row-major rows × cols) and their scales. */
    static final class Quantized {
        final int[] q;
        final float[] scales;
        final int rows;
        final int cols;

        Quantized(int[] q, float[] scales, int rows, int cols) {
            this.q = q;
            this.scales = scales;
            this.rows = rows;
            this.cols = cols;
        }
    }

    /** Index of the scale that element (r, c) uses. */
    static int scaleIndex(Granularity g, int r, int c, int cols, int group) {
        switch (g) {
            case PER_TENSOR:
                return 0;
            case PER_ROW:
                return r;
            case PER_COLUMN:
                return c;
            default:
                return r * (cols / group) + c / group;
        }
    }

    /** lowbit.h's quantization, computed in float32 exactly as specified. */
    static Quantized quantize(float[] x, int rows, int cols, int bits, Granularity g, int group, float[] given) {
        int qmax = (1 << (bits - 1)) - 1;
        int nScales = (int) g.scaleCount(rows, cols, group);
        float[] scales;
        if (given != null) {
            scales = given.clone();
        } else {
            float[] amax = new float[nScales];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    int s = scaleIndex(g, r, c, cols, group);
                    amax[s] = Math.max(amax[s], Math.abs(x[r * cols + c]));
                }
            }
            scales = new float[nScales];
            for (int s = 0; s < nScales; s++) {
                float scale = amax[s] / (float) qmax;
                scales[s] = scale == 0f ? 1f : scale;
            }
        }
        int[] q = new int[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                float v = x[r * cols + c] / scales[scaleIndex(g, r, c, cols, group)];
                double rounded = Math.rint(v);
                q[r * cols + c] = (int) Math.max(-qmax, Math.min(qmax, rounded));
            }
        }
        return new Quantized(q, scales, rows, cols);
    }

    /** Packs int4 values (rows × cols) two per byte, element 2i in the low nibble; ld = cols rounded up to even. */
    static byte[] packS4(int[] q, int rows, int cols) {
        int ld = cols + (cols & 1);
        byte[] out = new byte[rows * ld / 2];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int v = q[r * cols + c] & 0xF;
                int idx = (r * ld + c) / 2;
                out[idx] |= (byte) ((c & 1) == 0 ? v : v << 4);
            }
        }
        return out;
    }

    static int[] unpackS4(byte[] packed, int rows, int cols) {
        int ld = cols + (cols & 1);
        int[] q = new int[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int b = packed[(r * ld + c) / 2];
                int nib = (c & 1) == 0 ? b & 0xF : (b >> 4) & 0xF;
                q[r * cols + c] = nib >= 8 ? nib - 16 : nib;
            }
        }
        return q;
    }

    static byte[] toS8(int[] q) {
        byte[] out = new byte[q.length];
        for (int i = 0; i < q.length; i++) {
            out[i] = (byte) q[i];
        }
        return out;
    }

    /** Exact a · bᵀ (a: m × k, b: n × k) in long. */
    static long[] gemm(int[] a, int[] b, int m, int n, int k) {
        long[] c = new long[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                long acc = 0;
                for (int p = 0; p < k; p++) {
                    acc += (long) a[i * k + p] * b[j * k + p];
                }
                c[i * n + j] = acc;
            }
        }
        return c;
    }

    /** The epilogue in float32 steps, exactly as lowbit.h defines it. */
    static float epilogue(long acc, float aScale, float bScale, float bias, boolean hasBias) {
        float v = (float) acc * aScale;
        v = v * bScale;
        return hasBias ? v + bias : v;
    }

    /** x · wᵀ in FP64 on the original (unquantized) values. */
    static double[] matmul(float[] x, float[] w, int m, int n, int k) {
        double[] y = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int p = 0; p < k; p++) {
                    acc += (double) x[i * k + p] * w[j * k + p];
                }
                y[i * n + j] = acc;
            }
        }
        return y;
    }

    /** ‖got − want‖₂ / ‖want‖₂. */
    static double relativeError(float[] got, double[] want) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < want.length; i++) {
            double d = got[i] - want[i];
            num += d * d;
            den += want[i] * want[i];
        }
        return Math.sqrt(num / den);
    }
}
