package lowbit.quant;

/**
 * The seam between a {@link QuantizedLinear} and what executes it: flatten and quantize the
 * activations, the integer GEMM and the dequantizing epilogue, all as lowbit.h defines them. {@link
 * JavaLinearKernel} is the reference; {@link NativeLinearKernel} runs on a {@link lowbit.Context}
 * and matches it bit for bit. Implementations are thread-safe; {@link #close} frees what the kernel
 * holds (idempotent).
 */
interface LinearKernel extends AutoCloseable {
    /** {@code y[tokens x N] = layer(x[tokens x K])}; arguments are already checked. */
    void forward(float[] x, int tokens, float[] y);

    /** Where it runs, for reports ("Java", "CPU", "CUDA"). */
    String backend();

    @Override
    void close();
}
