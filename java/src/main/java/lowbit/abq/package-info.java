/**
 * ABQ-LLM (arXiv 2408.08554): arbitrary weight/activation bit widths run as sums of binary
 * AND-popcount products on bit planes ({@code lowbit_bitplane_*} in {@code lowbit.h}). This package
 * holds the quantizers (weights per output channel or per group, activations per token, asymmetric
 * with zero points by default or symmetric, bit balance for ≤ 2-bit weights) and {@link
 * lowbit.abq.AbqLinear}, the linear layer on the native backend with its bit-exact Java simulation,
 * and {@link lowbit.abq.AbqWidthPolicy}, which picks a width per layer from measured errors and
 * measured bit-plane GEMM times ({@code abq-auto}).
 * The learnable calibration (clipping, smoothing, distribution correction) lives elsewhere.
 */
package lowbit.abq;
