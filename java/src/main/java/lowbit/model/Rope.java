package lowbit.model;

/**
 * Rotary position embedding in llama.cpp's "normal" convention: within each head, the adjacent
 * pair {@code (x[2i], x[2i+1])} is rotated by angle {@code pos · base^(-2i/ropeDims) / factor_i}.
 * GGUF files of the {@code llama} architecture store the Q and K weight rows permuted for exactly
 * this convention (the converter interleaves Hugging Face's rotate-half halves), so the graph
 * applies it to the file's weights as they are, with no un-permuting.
 */
final class Rope {
    private final int headDim;
    private final int pairs;
    private final int maxPositions;
    private final float[] cos;
    private final float[] sin;

    /** {@code freqFactors} divides each pair's frequency (llama3-style scaling), or is null. */
    Rope(LlamaConfig c, float[] freqFactors) {
        this.headDim = c.headDim();
        this.pairs = c.ropeDimensions() / 2;
        this.maxPositions = c.contextLength();
        this.cos = new float[maxPositions * pairs];
        this.sin = new float[maxPositions * pairs];
        for (int i = 0; i < pairs; i++) {
            double frequency = Math.pow(c.ropeFreqBase(), -2.0 * i / c.ropeDimensions()) / c.ropeScale();
            if (freqFactors != null) frequency /= freqFactors[i];
            for (int pos = 0; pos < maxPositions; pos++) {
                double angle = pos * frequency;
                cos[pos * pairs + i] = (float) Math.cos(angle);
                sin[pos * pairs + i] = (float) Math.sin(angle);
            }
        }
    }

    /** Rotates {@code tokens} rows of {@code heads} heads each, row r being at position {@code firstPos + r}. */
    void apply(float[] x, int tokens, int heads, int firstPos) {
        if (firstPos + tokens > maxPositions) {
            throw new IllegalArgumentException("position " + (firstPos + tokens - 1) + " is beyond the context length " + maxPositions);
        }
        int rowLength = heads * headDim;
        for (int t = 0; t < tokens; t++) {
            int table = (firstPos + t) * pairs;
            for (int h = 0; h < heads; h++) {
                int base = t * rowLength + h * headDim;
                for (int i = 0; i < pairs; i++) {
                    float c = cos[table + i], s = sin[table + i];
                    float x0 = x[base + 2 * i], x1 = x[base + 2 * i + 1];
                    x[base + 2 * i] = x0 * c - x1 * s;
                    x[base + 2 * i + 1] = x0 * s + x1 * c;
                }
            }
        }
    }
}
