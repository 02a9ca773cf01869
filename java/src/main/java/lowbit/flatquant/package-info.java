/**
 * FlatQuant (arXiv 2410.09426) on the learnable calibration engine ({@link lowbit.calibrate}):
 * learnable Kronecker affine transforms with per-channel scaling and learnable clipping, placed in a
 * LLaMA block as the authors place them ({@link lowbit.flatquant.BlockTransforms}), applied during
 * calibration by {@link lowbit.flatquant.FlatQuantHooks}, calibrated block by block by {@link
 * lowbit.flatquant.FlatQuantMethod} through {@link lowbit.calibrate.BlockwiseCalibration}, and
 * folded offline into the weights for inference by {@link lowbit.flatquant.Folding}.
 */
package lowbit.flatquant;
