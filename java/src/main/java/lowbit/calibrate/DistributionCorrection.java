package lowbit.calibrate;

import java.util.ArrayList;
import java.util.List;

/**
 * ABQ-LLM's distribution-correction block loss, each term switchable so its effect can be measured
 * ({@code quantize/abq_llm.py} of the authors' code). With {@code out_q} the quantized block's output
 * on its input x, {@code out_fp} the target (the FP block on the FP stream's input) and {@code
 * out_fp(x)} the FP block fed the same input x:
 *
 * <pre>
 *   attentionKl:          KL(P_fp ‖ P_q) + KL(P_q ‖ P_fp)      (attention maps, {@link Losses#symmetricKl})
 *   outputMse:            MSE(out_q, out_fp)
 *   quantizedInputMse:    MSE(out_q, out_fp(x))
 *   outputCosine:         −log(mean_rows cos(out_q, out_fp))     ({@link Losses#negLogCosine})
 *   quantizedInputCosine: −log(mean_rows cos(out_q, out_fp(x)))
 * </pre>
 *
 * summed with weight 1 each. {@link #none()} (only {@code outputMse}) is OmniQuant's plain MSE loss.
 *
 * <p>Where this differs from the authors' code, and why:
 * <ul>
 *   <li>The KL compares every head's map, summed over keys and averaged over query rows. The
 *       authors average the maps over heads and then apply a second softmax to those probabilities
 *       before {@code KLDivLoss(reduction='mean')}, which flattens both maps towards uniform and
 *       shrinks the term by about the sequence length; we take the loss as the paper writes it.
 *   <li>{@code P_fp} is the FP block's map on the same input x as the quantized block (the only
 *       input the pipeline hands a loss); the authors take it on the FP stream's input. The two are
 *       the same when calibration trains on FP inputs ({@code quantizedInputs} false).
 *   <li>The cosine terms floor the mean cosine at 1e-12 instead of taking its absolute value.
 * </ul>
 */
public record DistributionCorrection(boolean attentionKl, boolean outputMse, boolean quantizedInputMse, boolean outputCosine,
                                     boolean quantizedInputCosine) {
    public DistributionCorrection {
        if (!(attentionKl || outputMse || quantizedInputMse || outputCosine || quantizedInputCosine)) {
            throw new IllegalArgumentException("distribution correction with every term off has no loss; keep at least outputMse");
        }
    }

    /** All five terms (the authors' loss). */
    public static DistributionCorrection all() {
        return new DistributionCorrection(true, true, true, true, true);
    }

    /** Only {@code MSE(out_q, out_fp)}: OmniQuant's loss, distribution correction off. */
    public static DistributionCorrection none() {
        return new DistributionCorrection(false, true, false, false, false);
    }

    /** True when a term needs the FP block run on the quantized block's input. */
    public boolean needsFpOnInput() {
        return attentionKl || quantizedInputMse || quantizedInputCosine;
    }

    /** Short form for ids and tables, e.g. {@code dc[kl,mse,mse-qin,cos,cos-qin]}. */
    @Override
    public String toString() {
        List<String> on = new ArrayList<>();
        if (attentionKl) on.add("kl");
        if (outputMse) on.add("mse");
        if (quantizedInputMse) on.add("mse-qin");
        if (outputCosine) on.add("cos");
        if (quantizedInputCosine) on.add("cos-qin");
        return "dc" + on;
    }

    /**
     * The loss from its parts: {@code quantized} the hooked pass, {@code fpOutput} the target, {@code
     * fpOnInput} the FP block's pass on the same input (null allowed when {@link #needsFpOnInput} is
     * false). Gradients reach the quantized pass only.
     */
    public Var loss(Tape tape, BlockPass quantized, Var fpOutput, BlockPass fpOnInput) {
        if (needsFpOnInput() && fpOnInput == null) throw new IllegalArgumentException(this + " needs the FP block's pass on the same input");
        Var out = quantized.output();
        Var total = null;
        if (attentionKl) total = sum(tape, total, Losses.symmetricKl(tape, constant(fpOnInput.attention()), quantized.attention()));
        if (outputMse) total = sum(tape, total, Losses.mse(tape, out, fpOutput));
        if (quantizedInputMse) total = sum(tape, total, Losses.mse(tape, out, constant(fpOnInput.output())));
        if (outputCosine) total = sum(tape, total, Losses.negLogCosine(tape, out, fpOutput));
        if (quantizedInputCosine) total = sum(tape, total, Losses.negLogCosine(tape, out, constant(fpOnInput.output())));
        return total;
    }

    /**
     * A {@link BlockSetup} whose loss is this one: {@code hooks} are wrapped so that every pass
     * records its input, and the loss runs the FP block ({@code block} without hooks, on a tape of
     * the same precision) on that input when a term needs it. The loss must follow its forward pass
     * on the same tape, as {@link BlockwiseCalibration} calls them; one pass at a time.
     */
    public BlockSetup setup(DecoderBlock block, BlockHooks hooks, List<ParamGroup> groups) {
        InputRecorder recorder = new InputRecorder(hooks);
        BlockLoss loss = (tape, pass, target) -> {
            BlockPass fp = null;
            if (needsFpOnInput()) {
                Var x = recorder.inputOf(tape);
                fp = block.forward(tape.isFp64() ? Tape.fp64() : Tape.fp32(), x, recorder.seqLen, BlockHooks.NONE);
            }
            return loss(tape, pass, target, fp);
        };
        return new BlockSetup(recorder, groups, loss);
    }

    private static Var sum(Tape tape, Var total, Var term) {
        return total == null ? term : Pointwise.add(tape, total, term);
    }

    private static Var constant(Var v) {
        return v.requiresGrad ? Var.constant(v.value, v.rows, v.cols) : v;
    }

    /** Hooks that delegate to the method's and remember the input of the latest pass and its tape. */
    private static final class InputRecorder implements BlockHooks {
        private final BlockHooks inner;
        private Tape tape;
        private Var input;
        private int seqLen;

        InputRecorder(BlockHooks inner) {
            this.inner = inner;
        }

        @Override
        public Pass open(Tape t) {
            Pass p = inner.open(t);
            return new InputAwarePass() {
                @Override
                public void input(Var x, int len) {
                    tape = t;
                    input = x;
                    seqLen = len;
                    if (p instanceof InputAwarePass) ((InputAwarePass) p).input(x, len);
                }

                @Override
                public Var activation(Site site, Var x) {
                    return p.activation(site, x);
                }

                @Override
                public Var weight(String linear, Var w) {
                    return p.weight(linear, w);
                }
            };
        }

        Var inputOf(Tape t) {
            if (t != tape || input == null) {
                throw new IllegalStateException("distribution correction: the loss must follow its block's forward pass on the same tape");
            }
            return input;
        }
    }
}
