package lowbit.dgq;

import java.util.Locale;
import lowbit.Backend;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
import lowbit.Tensor;
import lowbit.model.FloatLinear;
import lowbit.model.LinearOp;
import lowbit.quant.CalibrationStats;

/**
 * Command line: relative output error of DGQ A8W4 (both formats, both activation modes, G = 64 and
 * 128, with and without smoothing) beside RTN W4A8 per channel (lowbit's symmetric INT4 grid, per-token
 * INT8 activations, the native GEMM) on a synthetic layer with outlier channels. Held-out tokens.
 * Arguments: {@code [n k outlierScale]} (defaults 512 1024 30).
 */
public final class DgqMeasurement {
    private DgqMeasurement() {}

    /** RTN W4A8: per-channel INT4 weights and per-token INT8 activations through lowbit_gemm_dequant. */
    static final class RtnW4A8 implements LinearOp {
        private final Context ctx;
        private final QuantizedTensor w;
        private final int n, k;

        RtnW4A8(Context ctx, float[] weight, int n, int k) {
            this.ctx = ctx;
            this.n = n;
            this.k = k;
            try (Tensor t = ctx.upload(weight, n, k)) {
                this.w = ctx.quantize(t, 4, Granularity.PER_ROW);
            }
        }

        public int inFeatures() {
            return k;
        }

        public int outFeatures() {
            return n;
        }

        public void forward(float[] x, int tokens, float[] y) {
            try (Tensor xt = ctx.upload(java.util.Arrays.copyOf(x, tokens * k), tokens, k);
                 QuantizedTensor qx = ctx.quantize(xt, 8, Granularity.PER_ROW);
                 Tensor out = ctx.gemm(qx, w, null, DType.F32)) {
                System.arraycopy(out.toFloatArray(), 0, y, 0, tokens * n);
            }
        }

        public void close() {
            w.close();
        }
    }

    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 512;
        int k = args.length > 1 ? Integer.parseInt(args[1]) : 1024;
        double outlier = args.length > 2 ? Double.parseDouble(args[2]) : 30;
        int calibTokens = 512, evalTokens = 256, outliers = Math.max(1, k / 200);
        SyntheticLayer layer = SyntheticLayer.create(11, n, k);
        float[] calib = layer.activations(12, calibTokens, outliers, outlier);
        CalibrationStats stats = layer.calibrate(calib, calibTokens, 128);
        float[] x = layer.activations(13, evalTokens, outliers, outlier);
        FloatLinear fp = new FloatLinear(layer.weight(), null, n, k);
        System.out.printf(Locale.ROOT, "synthetic layer N=%d K=%d, %d outlier channels x%.0f, %d calibration / %d held-out tokens%n",
                n, k, outliers, outlier, calibTokens, evalTokens);
        try (Context ctx = Context.open(Backend.CPU)) {
            try (RtnW4A8 rtn = new RtnW4A8(ctx, layer.weight(), n, k)) {
                System.out.printf(Locale.ROOT, "%-52s %.4e%n", "RTN W4A8 per-channel (per-token A8)",
                        DgqLayerReport.relativeError(fp, null, rtn, x, evalTokens));
            }
            for (int g : new int[] {128, 64}) {
                for (double p : new double[] {0.995, Double.NaN}) {
                    for (WeightFormat f : WeightFormat.values()) {
                        for (ActivationMode a : ActivationMode.values()) {
                            DgqConfig cfg = DgqConfig.defaults().withGroup(g).withFormat(f).withActivations(a).withSmoothing(p, 1);
                            long t0 = System.nanoTime();
                            try (DgqLinear q = DgqLinear.create(ctx, layer.weight(), null, n, k, stats, cfg)) {
                                double err = DgqLayerReport.relativeError(fp, null, q, x, evalTokens);
                                System.out.printf(Locale.ROOT, "%-52s %.4e  (search %.1f s)%n",
                                        String.format(Locale.ROOT, "DGQ G=%d %s %s %s", g, f, a, Double.isNaN(p) ? "no-smooth" : "smooth"),
                                        err, (System.nanoTime() - t0) / 1e9);
                            }
                        }
                    }
                }
            }
        }
    }
}
