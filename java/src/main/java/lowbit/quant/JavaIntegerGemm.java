package lowbit.quant;

/** The pure-Java {@link IntegerGemm}: the reference the native backends must match bit for bit. */
final class JavaIntegerGemm implements IntegerGemm {
    static final JavaIntegerGemm INSTANCE = new JavaIntegerGemm();

    private JavaIntegerGemm() {}

    @Override
    public void gemmDequant(PackedMatrix a, PackedMatrix b, float aScale, float[] bScales, float[] bias, float[] out) {
        int m = a.rows;
        int n = b.rows;
        int k = a.cols;
        if (b.cols != k) {
            throw new ShapeMismatchException("GEMM inner dimensions differ: A has K=" + k + ", B has K=" + b.cols);
        }
        if (bScales.length != 1 && bScales.length != n) {
            throw new ShapeMismatchException("weight scales: expected 1 or " + n + ", got " + bScales.length);
        }
        if (bias != null && bias.length != n) {
            throw new ShapeMismatchException("bias: expected " + n + " values, got " + bias.length);
        }
        if (out.length < (long) m * n) {
            throw new ShapeMismatchException("output: expected " + ((long) m * n) + " values, got " + out.length);
        }
        int[] bAll = new int[n * k];
        int[] row = new int[k];
        for (int j = 0; j < n; j++) {
            b.unpackRow(j, row);
            System.arraycopy(row, 0, bAll, j * k, k);
        }
        for (int i = 0; i < m; i++) {
            a.unpackRow(i, row);
            for (int j = 0; j < n; j++) {
                int acc = 0;
                int base = j * k;
                for (int c = 0; c < k; c++) {
                    acc += row[c] * bAll[base + c];
                }
                float bs = bScales.length == 1 ? bScales[0] : bScales[j];
                float v = ((float) acc * aScale) * bs;
                out[i * n + j] = bias == null ? v : v + bias[j];
            }
        }
    }
}
