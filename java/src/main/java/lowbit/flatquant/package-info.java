/**
 * FlatQuant (arXiv 2410.09426) on the learnable calibration engine ({@link lowbit.calibrate}):
 * learnable Kronecker affine transforms with per-channel scaling and learnable clipping, placed in a
 * LLaMA block as the authors place them ({@link lowbit.flatquant.BlockTransforms}), applied during
 * calibration by {@link lowbit.flatquant.FlatQuantHooks}, calibrated block by block by {@link
 * lowbit.flatquant.FlatQuantMethod} through {@link lowbit.calibrate.BlockwiseCalibration}, and
 * folded offline into the weights for inference by {@link lowbit.flatquant.Folding}.
 *
 * <p>Inference: {@link lowbit.flatquant.FlatQuantBlock} turns a calibrated block into {@link
 * lowbit.flatquant.FlatQuantLinear} layers (online transform {@link
 * lowbit.flatquant.OnlineTransform}, per-token activations {@link
 * lowbit.flatquant.TokenQuantizer}, per-channel weights {@link lowbit.flatquant.ClippedWeights},
 * integer GEMM on the native backend) and, for KV4, the K transform and KV quantizer at the cache
 * ({@link lowbit.flatquant.FlatQuantKvCodec}); {@link lowbit.pipeline.FlatQuantQuantizer} does it
 * for a whole model.
 */
package lowbit.flatquant;
