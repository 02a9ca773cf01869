package lowbit;

import lowbit.bridge.LowbitNative;

/**
 * The arithmetic of the two small products in {@link Context#kronQuantizeInto} ({@code lowbit.h},
 * {@code lowbit_kron_precision}).
 */
public enum KronPrecision {
    /**
     * Fixed-order float32 FMA chains: codes and scales bit-identical on every backend (what
     * FlatQuant's Java simulation and saved models are checked against). The default.
     */
    EXACT(LowbitNative.LOWBIT_KRON_EXACT),
    /**
     * CUDA: both products on the TF32 tensor cores (on an H100 1.4x faster than {@link #EXACT} at
     * n = 4096 and 11008, 1.4-1.7x at decode batch sizes; bench/RESULTS.md); the transformed row
     * carries a relative error of about 1e-3, so a code may differ from the exact one by 1 near a
     * rounding boundary. On the CPU backend (and for factor pairs whose tiles do not fit the GPU's
     * shared memory: 112 x 128 and 128 x 128 on an H100) the exact products run.
     */
    TF32(LowbitNative.LOWBIT_KRON_TF32),
    /**
     * CUDA: both products on the FP16 tensor cores ({@code mma.sync}, float32 sums), for F32, F16
     * and BF16 inputs alike. Each token and each factor is first scaled by an exact power of two
     * into F16's range (so massive activations cannot overflow), the operands and the intermediate
     * {@code P1ᵀ·X} are rounded to F16 once, and the result is scaled back exactly: the transformed
     * row carries a relative error of about 1e-3, as with {@link #TF32} (a code may differ from the
     * exact one by 1 near a rounding boundary, a scale in its 3rd or 4th digit), at a fraction of
     * its cost. On the CPU backend, and where the tiles do not fit the GPU's shared memory, the
     * exact products run.
     */
    HALF(LowbitNative.LOWBIT_KRON_HALF);

    final int code;

    KronPrecision(int code) {
        this.code = code;
    }
}
