package lowbit.calibrate;

/**
 * Places in a decoder block where {@link BlockHooks} may transform or quantize an activation: the
 * inputs of the linear layers (one site per distinct input) and the attention operands after RoPE.
 */
public enum Site {
    /** The normalized input read by attn_q, attn_k and attn_v. */
    ATTN_IN,
    /** Queries after RoPE. */
    QUERY,
    /** Keys after RoPE (what a KV cache stores). */
    KEY,
    /** Values (what a KV cache stores). */
    VALUE,
    /** The attention output read by attn_output. */
    ATTN_OUT_IN,
    /** The normalized input read by ffn_gate and ffn_up (OPT's fc1 is ffn_up). */
    FFN_IN,
    /** The gated (LLaMA) or ReLU (OPT) activation read by ffn_down (OPT's fc2). */
    FFN_DOWN_IN;

    /** The site of a block linear layer's input ({@code attn_q}, ..., {@code ffn_down}). */
    public static Site inputOf(String linear) {
        switch (linear) {
            case "attn_q":
            case "attn_k":
            case "attn_v":
                return ATTN_IN;
            case "attn_output":
                return ATTN_OUT_IN;
            case "ffn_gate":
            case "ffn_up":
                return FFN_IN;
            case "ffn_down":
                return FFN_DOWN_IN;
            default:
                throw new IllegalArgumentException("not a block linear layer: " + linear + " (attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down)");
        }
    }
}
