package lowbit;

/**
 * Which machine code a CUDA device loaded for a GEMM kernel configuration ({@link
 * Context#gemmKernelBinary}; {@code lowbit_gemm_config_binary} in {@code lowbit.h}).
 * Architectures are {@code major * 10 + minor}: the PTX the kernel was compiled from ({@code
 * ptxArch}) and the SASS that runs ({@code sassArch}). {@code jit} is true when the driver
 * JIT-compiled that SASS from the PTX because the library carries no SASS for the device: the
 * INT4 tensor-core kernel ({@link Context#SM80_S4}) has SASS for sm_80 and sm_89 only, so on an
 * H100 it reads {@code ptxArch 80, sassArch 90, jit true}.
 */
public record KernelBinary(int ptxArch, int sassArch, boolean jit) {
    @Override
    public String toString() {
        return "compute_" + ptxArch + " PTX, sm_" + sassArch + " SASS"
                + (jit ? " (JIT-compiled by the driver from the PTX)" : " (shipped in the library)");
    }
}
