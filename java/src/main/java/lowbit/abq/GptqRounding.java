package lowbit.abq;

import lowbit.quant.Gptq;

/**
 * GPTQ's rounding onto ABQ's fixed per-output-channel grid: the scales and zero points of a
 * round-to-nearest quantization ({@link ClippedWeightQuantizer}, with the learned clip) are kept,
 * and the codes are chosen by {@link Gptq} (dampening, dead inputs, the upper Cholesky factor of
 * {@code H⁻¹}, the column loop with error feedback) with ABQ's per-element rounding: {@link Grid}'s
 * float32 code functions, symmetric or with zero points, so every code lies on the grid the
 * bit-plane GEMM runs ({@code value = s_r·(q − z_r)}). With a diagonal {@code H} the feedback is zero
 * and the codes are the round-to-nearest ones. Hessians are gathered with {@link Gptq#accumulate}.
 */
public final class GptqRounding {
    private GptqRounding() {}

    /**
     * The GPTQ codes of {@code w} ({@code n × k}, row = output channel) on {@code grid}'s per-row
     * scales and zero points ({@code grid}: the round-to-nearest codes of the same weights by {@code
     * quantizer}, per channel), for inputs with second moments {@code h} ({@code k × k}, symmetric).
     */
    public static IntCodes quantize(float[] w, int n, int k, WeightQuantizer quantizer, IntCodes grid, double[] h) {
        if (quantizer.group() != 0 || quantizer.isBitBalanced()) {
            throw new IllegalArgumentException("GPTQ rounding here is per output channel on a plain grid; got " + quantizer);
        }
        if (w.length != (long) n * k || grid.rows() != n || grid.cols() != k || grid.group() != 0) {
            throw new IllegalArgumentException("weights " + n + " x " + k + " (" + w.length + " values) and a per-channel grid of "
                    + grid.rows() + " x " + grid.cols() + " must match");
        }
        if (grid.hasZeroPoints() != quantizer.isAsymmetric() || grid.planes() != quantizer.planes()) {
            throw new IllegalArgumentException("the grid (" + grid.planes() + " planes, " + (grid.hasZeroPoints() ? "zero points" : "symmetric")
                    + ") is not " + quantizer + "'s");
        }
        Grid.checkFinite(w, k, "weights");
        float[] scales = grid.scales();
        int[] zeros = grid.zeroPoints();
        boolean asym = quantizer.isAsymmetric();
        int qmax = quantizer.qmax();
        Gptq.RowGrid rows = new Gptq.RowGrid() {
            @Override
            public int code(int row, double v) {
                return asym ? Grid.asymmetricCode((float) v, scales[row], zeros[row], qmax) : Grid.symmetricCode((float) v, scales[row], qmax);
            }

            @Override
            public double value(int row, int code) {
                return (double) scales[row] * (code - (asym ? zeros[row] : 0));
            }
        };
        double[] wd = new double[n * k];
        for (int i = 0; i < wd.length; i++) wd[i] = w[i];
        int[] codes = Gptq.quantize(wd, n, k, h, rows, Gptq.Options.defaults());
        return new IntCodes(n, k, grid.planes(), !asym, 0, codes, scales, zeros);
    }
}
