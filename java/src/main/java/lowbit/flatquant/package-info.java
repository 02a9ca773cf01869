/**
 * FlatQuant (arXiv 2410.09426) on the learnable calibration engine ({@link lowbit.calibrate}):
 * learnable Kronecker affine transforms with per-channel scaling and learnable clipping, placed in a
 * LLaMA block as the authors place them ({@link lowbit.flatquant.BlockTransforms}), applied during
 * calibration by {@link lowbit.flatquant.FlatQuantHooks}, calibrated block by block by {@link
 * lowbit.flatquant.FlatQuantMethod} through {@link lowbit.calibrate.BlockwiseCalibration}, and
 * folded offline into the weights for inference by {@link lowbit.flatquant.Folding}.
 *
 * <p>Inference: {@link lowbit.flatquant.FlatQuantBlock} turns a calibrated block into {@link
 * lowbit.flatquant.FlatQuantLinear} layers (online transform and per-token activation quantization
 * fused in the native {@code lowbit_kron_quantize}, with {@link lowbit.flatquant.OnlineTransform}
 * and {@link lowbit.flatquant.TokenQuantizer} as the bit-exact Java reference; per-channel weights
 * {@link lowbit.flatquant.ClippedWeights}, rounded to nearest or by GPTQ through {@link
 * lowbit.flatquant.GptqPendingLinear}; integer GEMM on the native backend) and, for KV4, the K
 * transform and KV quantizer at the cache ({@link lowbit.flatquant.FlatQuantKvCodec}: packed 4-bit
 * codes in the cache, or the same values as floats); {@link lowbit.pipeline.FlatQuantQuantizer} does
 * it for a whole model, with report errors from {@link lowbit.flatquant.FlatQuantLayerErrors}, and
 * {@link lowbit.pipeline.QuantizedModelFile} saves and loads the result (format version 3).
 */
package lowbit.flatquant;
