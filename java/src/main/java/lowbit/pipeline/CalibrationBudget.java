package lowbit.pipeline;

import java.util.Locale;

/**
 * How much a learnable method (ABQ-LLM, FlatQuant) calibrates per block: {@code samples} sequences
 * of {@code seqLen} tokens from the calibration split, {@code epochs} passes, {@code batchSize}
 * sequences per optimizer step.
 */
public record CalibrationBudget(int samples, int seqLen, int epochs, int batchSize) {
    public CalibrationBudget {
        if (samples < 1 || seqLen < 2 || epochs < 0 || batchSize < 1 || batchSize > samples) {
            throw new IllegalArgumentException("bad calibration budget: " + samples + " samples of " + seqLen + " tokens, " + epochs
                    + " epochs, batch " + batchSize + " (need samples >= 1, seqLen >= 2, epochs >= 0, 1 <= batch <= samples)");
        }
    }

    /** A budget a shared 2-core machine runs in minutes per method on SmolLM2-135M: 8 × 128 tokens, 2 epochs, batch 2 (8 steps per block). */
    public static CalibrationBudget reduced() {
        return new CalibrationBudget(8, 128, 2, 2);
    }

    /** {@code "reduced"} or four integers {@code samples,seqLen,epochs,batch}. */
    public static CalibrationBudget parse(String s) {
        if (s == null) throw new IllegalArgumentException("a calibration budget is required: reduced or samples,seqLen,epochs,batch");
        String t = s.trim().toLowerCase(Locale.ROOT);
        if (t.equals("reduced")) return reduced();
        String[] p = t.split(",");
        if (p.length != 4) throw new IllegalArgumentException("calibration budget '" + s + "': use reduced or four integers samples,seqLen,epochs,batch");
        int[] v = new int[4];
        for (int i = 0; i < 4; i++) {
            try {
                v[i] = Integer.parseInt(p[i].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("calibration budget '" + s + "': '" + p[i] + "' is not an integer");
            }
        }
        return new CalibrationBudget(v[0], v[1], v[2], v[3]);
    }

    @Override
    public String toString() {
        return samples + " x " + seqLen + " tokens, " + epochs + " epochs, batch " + batchSize;
    }
}
