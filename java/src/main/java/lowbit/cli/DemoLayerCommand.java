package lowbit.cli;

import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;
import lowbit.Backend;
import lowbit.Context;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.QuantizedTensor;
import lowbit.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code lowbit demo-layer}: one synthetic linear layer, quantized three ways and run through the integer GEMM of
 * a backend, with its error against FP64 and its speed against a plain Java FP32 matmul measured in
 * the same run.
 */
@Command(name = "demo-layer", description = "Quantize one synthetic linear layer (W8A8, W4A8, W4A4), run the integer GEMM, "
        + "print error vs FP64 and speed vs a Java FP32 matmul.")
final class DemoLayerCommand implements Callable<Integer> {
    @Option(names = "--m", description = "tokens (rows of X), default ${DEFAULT-VALUE}")
    int m = 256;

    @Option(names = "--n", description = "output features (rows of W), default ${DEFAULT-VALUE}")
    int n = 1536;

    @Option(names = "--k", description = "input features, default ${DEFAULT-VALUE}")
    int k = 576;

    @Option(names = "--backend", description = "CPU, CUDA or AUTO, default ${DEFAULT-VALUE}")
    String backend = "CPU";

    @Option(names = "--repeats", description = "timed repetitions (median reported), default ${DEFAULT-VALUE}")
    int repeats = 15;

    @Option(names = "--seed", description = "random seed, default ${DEFAULT-VALUE}")
    long seed = 1;

    @Override
    public Integer call() {
        if (m <= 0 || n <= 0 || k <= 0 || repeats <= 0) {
            throw new IllegalArgumentException("--m, --n, --k and --repeats must be positive");
        }
        Backend be = backend.equalsIgnoreCase("AUTO") ? Backend.auto() : Backend.valueOf(backend.toUpperCase(Locale.ROOT));
        Random rnd = new Random(seed);
        float[] x = new float[m * k];
        float[] w = new float[n * k];
        // Activations with a few outlier channels, as LLM activations have; weights Gaussian.
        boolean[] outlier = new boolean[k];
        for (int c = 0; c < k; c += 97) {
            outlier[c] = true;
        }
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (rnd.nextGaussian() * (outlier[i % k] ? 20 : 1));
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.05);
        }
        double[] exact = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int p = 0; p < k; p++) {
                    acc += (double) x[i * k + p] * w[j * k + p];
                }
                exact[i * n + j] = acc;
            }
        }
        float[] yJava = new float[m * n];
        double javaSec = median(() -> javaMatmul(x, w, yJava, m, n, k));
        double ops = 2.0 * m * n * k;

        System.out.printf(Locale.ROOT, "lowbit demo-layer: Y = X·Wᵀ, X %d x %d (outlier channels every 97th), W %d x %d, backend %s%n",
                m, k, n, k, be);
        System.out.printf(Locale.ROOT, "%-28s %12s %10s %10s %12s%n", "variant", "rel. error", "ms", "GOP/s", "vs Java FP32");
        System.out.printf(Locale.ROOT, "%-28s %12.2e %10.3f %10.1f %12s%n", "Java FP32 (1 thread)",
                relError(yJava, exact), javaSec * 1e3, ops / javaSec / 1e9, "1.00x");
        try (Context ctx = Context.open(be);
                Tensor xt = ctx.upload(x, m, k);
                Tensor wt = ctx.upload(w, n, k);
                Tensor y = ctx.allocate(DType.F32, m, n)) {
            int[][] variants = {{8, 8}, {4, 8}, {4, 4}};
            for (int[] v : variants) {
                int wBits = v[0];
                int aBits = v[1];
                try (QuantizedTensor qw = ctx.quantize(wt, wBits, Granularity.PER_ROW);
                        QuantizedTensor qx = ctx.quantize(xt, aBits, Granularity.PER_ROW)) {
                    double sec = median(() -> {
                        ctx.quantizeInto(xt, qx);
                        ctx.gemmInto(qx, qw, null, y);
                        ctx.synchronize();
                    });
                    float[] out = y.toFloatArray();
                    System.out.printf(Locale.ROOT, "%-28s %12.2e %10.3f %10.1f %11.2fx%n",
                            "W" + wBits + "A" + aBits + " per-token/channel", relError(out, exact), sec * 1e3,
                            ops / sec / 1e9, javaSec / sec);
                }
            }
        }
        System.out.println("(time includes quantizing X; the weights are quantized once)");
        return 0;
    }

    private double median(Runnable r) {
        r.run();
        double[] t = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            long t0 = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(t);
        return t[repeats / 2];
    }

    private static void javaMatmul(float[] x, float[] w, float[] y, int m, int n, int k) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                float acc = 0;
                for (int p = 0; p < k; p++) {
                    acc += x[i * k + p] * w[j * k + p];
                }
                y[i * n + j] = acc;
            }
        }
    }

    private static double relError(float[] got, double[] want) {
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
