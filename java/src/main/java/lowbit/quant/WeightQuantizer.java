package lowbit.quant;

/**
 * Symmetric weight quantization of an N x K row-major matrix, per output channel (one scale per
 * row) or per tensor, with optional clipping ({@code scale = (amax * c) / qmax}, values beyond
 * clamp to ±qmax) and a grid search for the clip ratio c.
 */
final class WeightQuantizer {
    private WeightQuantizer() {}

    /** Packed codes and their float32 scales (N or 1 of them). */
    record Quantized(PackedMatrix codes, float[] scales) {}

    /** Quantizes with one clip ratio per row (perChannel) or one for the tensor. */
    static Quantized quantize(float[] w, int n, int k, int bits, boolean perChannel, float[] clip) {
        int qmax = SymmetricQuant.qmax(bits);
        PackedMatrix codes = PackedMatrix.allocate(bits, n, k);
        float[] scales = new float[perChannel ? n : 1];
        if (perChannel) {
            for (int r = 0; r < n; r++) {
                float amax = SymmetricQuant.absMax(w, r * k, (r + 1) * k, "weights");
                scales[r] = SymmetricQuant.scale(amax * clip[r], bits);
            }
        } else {
            float amax = SymmetricQuant.absMax(w, 0, n * k, "weights");
            scales[0] = SymmetricQuant.scale(amax * clip[0], bits);
        }
        for (int r = 0; r < n; r++) {
            float s = scales[perChannel ? r : 0];
            for (int c = 0; c < k; c++) {
                codes.set(r, c, SymmetricQuant.quantize(w[r * k + c], s, qmax));
            }
        }
        return new Quantized(codes, scales);
    }

    /**
     * Chooses clip ratios from {@code grid}: per row (perChannel) or one for the tensor, minimizing
     * the weight MSE, or the output MSE {@code sum_t (x_t · (w - ŵ))²} over the sample {@code x}
     * (tokens x K). Ties keep the earlier grid entry. Returns N (perChannel) or 1 ratios.
     */
    static float[] chooseClip(float[] w, int n, int k, int bits, boolean perChannel, QuantConfig.ClipSearch mode,
                              double[] grid, float[] x, int tokens) {
        float[] best = new float[perChannel ? n : 1];
        java.util.Arrays.fill(best, 1f);
        if (mode == QuantConfig.ClipSearch.NONE) {
            return best;
        }
        int qmax = SymmetricQuant.qmax(bits);
        float tensorAmax = perChannel ? 0f : SymmetricQuant.absMax(w, 0, n * k, "weights");
        double[] bestErr = new double[n];
        double bestTensorErr = Double.POSITIVE_INFINITY;
        java.util.Arrays.fill(bestErr, Double.POSITIVE_INFINITY);
        double[] diff = new double[k];
        for (double ratio : grid) {
            float c = (float) ratio;
            double tensorErr = 0;
            for (int r = 0; r < n; r++) {
                float amax = perChannel ? SymmetricQuant.absMax(w, r * k, (r + 1) * k, "weights") : tensorAmax;
                float s = SymmetricQuant.scale(amax * c, bits);
                for (int j = 0; j < k; j++) {
                    float v = w[r * k + j];
                    diff[j] = (double) v - (double) SymmetricQuant.quantize(v, s, qmax) * s;
                }
                double err = 0;
                if (mode == QuantConfig.ClipSearch.WEIGHT_MSE) {
                    for (int j = 0; j < k; j++) {
                        err += diff[j] * diff[j];
                    }
                } else {
                    for (int t = 0; t < tokens; t++) {
                        double e = 0;
                        for (int j = 0; j < k; j++) {
                            e += x[t * k + j] * diff[j];
                        }
                        err += e * e;
                    }
                }
                if (perChannel && err < bestErr[r]) {
                    bestErr[r] = err;
                    best[r] = c;
                }
                tensorErr += err;
            }
            if (!perChannel && tensorErr < bestTensorErr) {
                bestTensorErr = tensorErr;
                best[0] = c;
            }
        }
        return best;
    }
}
