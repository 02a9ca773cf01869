/**
 * Learnable block-wise calibration: reverse-mode gradients through a decoder block with fake
 * quantization, an optimizer, and a resumable block-by-block pipeline, the engine under
 * FlatQuant's and ABQ-LLM's (OmniQuant's) calibration.
 *
 * <ul>
 *   <li>Graph: {@link lowbit.calibrate.Tape} records the backward rules of the ops run on it;
 *       {@link lowbit.calibrate.Var} holds values and gradients (double; the matrix products run
 *       in FP32 on an FP32 tape, FP64 on an FP64 tape).
 *   <li>Ops, each with its backward rule beside its forward: {@link lowbit.calibrate.Linear},
 *       {@link lowbit.calibrate.MatrixOps}, {@link lowbit.calibrate.RmsNorm}, {@link
 *       lowbit.calibrate.LayerNorm}, {@link lowbit.calibrate.Pointwise} (residual add, SwiGLU,
 *       ReLU), {@link lowbit.calibrate.RotaryEmbedding}, {@link lowbit.calibrate.CausalAttention},
 *       {@link lowbit.calibrate.Kronecker}, {@link lowbit.calibrate.Cayley}, {@link
 *       lowbit.calibrate.FakeQuant} (STE, learnable clipping), {@link lowbit.calibrate.Losses}.
 *   <li>Parameter kinds: {@link lowbit.calibrate.ChannelScale}, {@link
 *       lowbit.calibrate.KroneckerTransform} ({@link lowbit.calibrate.AffineFactor}), {@link
 *       lowbit.calibrate.ClipFactors}, {@link lowbit.calibrate.LowRankCompensation}.
 *   <li>Blocks: {@link lowbit.calibrate.LlamaBlock}, {@link lowbit.calibrate.OptBlock}; a method
 *       changes a block through {@link lowbit.calibrate.BlockHooks} at {@link
 *       lowbit.calibrate.Site}s and on each linear layer's weight.
 *   <li>Training: {@link lowbit.calibrate.AdamW} over {@link lowbit.calibrate.ParamGroup}s,
 *       {@link lowbit.calibrate.CosineSchedule}; {@link lowbit.calibrate.BlockwiseCalibration}
 *       runs a {@link lowbit.calibrate.BlockMethod} (e.g. {@link lowbit.calibrate.LwcMethod}) over
 *       the model with checkpoints after every block.
 * </ul>
 */
package lowbit.calibrate;
