package lowbit.calibrate;

import lowbit.model.LlamaConfig;

/**
 * RoPE in the convention of {@code lowbit.model} (llama.cpp's "normal" mode, the GGUF row order):
 * within each head the adjacent pair {@code (x[2i], x[2i+1])} of the first {@code ropeDims}
 * dimensions is rotated by {@code pos · base^(−2i/ropeDims) / scale / factor_i}. Rows are tokens of
 * sequences of {@code seqLen} tokens laid one after another, so row r is at position {@code r mod
 * seqLen}. Backward: the rotation by the opposite angle.
 */
public final class RotaryEmbedding {
    private final int headDim;
    private final int pairs;
    private final double[] frequency;

    /** {@code freqFactors} ({@code ropeDims/2} values dividing each pair's frequency) or null. */
    public RotaryEmbedding(int headDim, int ropeDims, double base, double scale, float[] freqFactors) {
        if (ropeDims % 2 != 0 || ropeDims > headDim || ropeDims < 0) throw new IllegalArgumentException("bad RoPE dimensions " + ropeDims + " for head size " + headDim);
        if (freqFactors != null && freqFactors.length != ropeDims / 2) {
            throw new IllegalArgumentException("RoPE frequency factors: " + freqFactors.length + " values, expected " + ropeDims / 2);
        }
        this.headDim = headDim;
        this.pairs = ropeDims / 2;
        this.frequency = new double[pairs];
        for (int i = 0; i < pairs; i++) {
            frequency[i] = Math.pow(base, -2.0 * i / ropeDims) / scale / (freqFactors == null ? 1.0 : freqFactors[i]);
        }
    }

    /** The embedding of a LLaMA configuration (freqFactors: the GGUF's {@code rope_freqs} tensor or null). */
    public static RotaryEmbedding of(LlamaConfig c, float[] freqFactors) {
        return new RotaryEmbedding(c.headDim(), c.ropeDimensions(), c.ropeFreqBase(), c.ropeScale(), freqFactors);
    }

    public int headDim() {
        return headDim;
    }

    /** Rotates every head of {@code x} ({@code tokens × heads·headDim}). */
    public Var apply(Tape tape, Var x, int seqLen) {
        if (x.cols % headDim != 0) throw new IllegalArgumentException(x.cols + " columns are not whole heads of " + headDim);
        if (seqLen < 1 || x.rows % seqLen != 0) throw new IllegalArgumentException(x.rows + " rows are not whole sequences of " + seqLen);
        double[][] cs = table(seqLen);
        double[] y = x.value.clone();
        rotate(y, x.rows, x.cols, seqLen, cs, 1);
        Var out = tape.result(y, x.rows, x.cols, x);
        tape.onBackward(out, () -> {
            double[] g = out.grad.clone();
            rotate(g, x.rows, x.cols, seqLen, cs, -1);
            double[] gx = x.gradArray();
            for (int i = 0; i < g.length; i++) gx[i] += g[i];
        });
        return out;
    }

    private double[][] table(int seqLen) {
        double[] cos = new double[seqLen * pairs], sin = new double[seqLen * pairs];
        for (int p = 0; p < seqLen; p++) {
            for (int i = 0; i < pairs; i++) {
                cos[p * pairs + i] = Math.cos(p * frequency[i]);
                sin[p * pairs + i] = Math.sin(p * frequency[i]);
            }
        }
        return new double[][] {cos, sin};
    }

    private void rotate(double[] x, int rows, int cols, int seqLen, double[][] cs, int sign) {
        for (int r = 0; r < rows; r++) {
            int t = (r % seqLen) * pairs;
            for (int h = 0; h < cols; h += headDim) {
                int base = r * cols + h;
                for (int i = 0; i < pairs; i++) {
                    double c = cs[0][t + i], s = sign * cs[1][t + i];
                    double x0 = x[base + 2 * i], x1 = x[base + 2 * i + 1];
                    x[base + 2 * i] = x0 * c - x1 * s;
                    x[base + 2 * i + 1] = x0 * s + x1 * c;
                }
            }
        }
    }
}
