package lowbit;

/** Where a {@link Context} computes. */
public enum Backend {
    /** liblowbit's CPU kernels (AVX-512 VNNI / AVX2 / portable, chosen at run time). */
    CPU(1),
    /** liblowbit's CUDA kernels on an NVIDIA GPU. */
    CUDA(2);

    final int code;

    Backend(int code) {
        this.code = code;
    }

    /** CUDA when this build has it and a device is present, else CPU. */
    public static Backend auto() {
        return Lowbit.cudaDeviceCount() > 0 ? CUDA : CPU;
    }
}
