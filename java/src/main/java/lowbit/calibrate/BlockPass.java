package lowbit.calibrate;

/** One forward pass of a decoder block: its output and its attention maps (see {@link CausalAttention}). */
public record BlockPass(Var output, Var attention) {}
