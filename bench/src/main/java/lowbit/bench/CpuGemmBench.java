package lowbit.bench;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import lowbit.Backend;
import lowbit.Context;
import lowbit.CpuIsa;
import lowbit.DType;
import lowbit.Granularity;
import lowbit.Lowbit;
import lowbit.QuantizedTensor;
import lowbit.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The CPU backend's quantized linear layer (fused GEMM + epilogue, F32 out) per ISA level and
 * operand pair, on the real model's shapes (SmolLM2-135M: hidden 576, FFN 1536). The scalar level is
 * the in-run baseline; ops/s × 2·M·N·K gives the integer op rate.
 *
 * <pre>java -jar bench/target/benchmarks.jar CpuGemmBench</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(1)
public class CpuGemmBench {
    /** M x N x K. */
    @Param({"1x1536x576", "128x1536x576", "512x576x1536"})
    public String shape;

    @Param({"SCALAR", "AVX2", "AVX512_VNNI"})
    public String isa;

    @Param({"W8A8", "W4A8", "W4A4"})
    public String bits;

    private Context ctx;
    private QuantizedTensor a;
    private QuantizedTensor b;
    private Tensor out;

    @Setup(Level.Trial)
    public void setup() {
        String[] p = shape.split("x");
        int m = Integer.parseInt(p[0]);
        int n = Integer.parseInt(p[1]);
        int k = Integer.parseInt(p[2]);
        CpuIsa level = CpuIsa.valueOf(isa);
        if (level.ordinal() > Lowbit.cpuIsaBest().ordinal()) {
            throw new IllegalStateException("this CPU lacks " + level);
        }
        int wBits = bits.charAt(1) - '0';
        int aBits = bits.charAt(3) - '0';
        ctx = Context.open(Backend.CPU);
        ctx.setCpuIsa(level);
        Random rnd = new Random(1);
        float[] x = new float[m * k];
        float[] w = new float[n * k];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        try (Tensor xt = ctx.upload(x, m, k);
                Tensor wt = ctx.upload(w, n, k)) {
            a = ctx.quantize(xt, aBits, Granularity.PER_ROW);
            b = ctx.quantize(wt, wBits, Granularity.PER_ROW);
        }
        out = ctx.allocate(DType.F32, m, n);
    }

    @Benchmark
    public void linear() {
        ctx.gemmInto(a, b, null, out);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        out.close();
        a.close();
        b.close();
        ctx.close();
    }
}
