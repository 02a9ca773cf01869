package lowbit.abq;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Chooses an ABQ width per layer from measured figures ({@link LayerWidthFigures}: each candidate's
 * relative output error on calibration activations and the bit-plane GEMM's time at the timing
 * M's on the device). The rule:
 *
 * <ol>
 *   <li><b>Error bound.</b> A candidate's budget error is {@code ē(c) = max { e(d) : d a candidate
 *       with c ≤ d }}, ≤ the partial order of {@link AbqWidth#atMostAsWideAs} (no more weight
 *       levels and no more activation bits): a width is never trusted to be more accurate than a
 *       wider one of the same layer. Measured errors are usually ordered so already (then ē = e);
 *       where a sample says otherwise (a few calibration tokens, rounding luck), the bound keeps the
 *       choice monotone (below).
 *   <li><b>Choice.</b> Among the candidates with {@code ē(c) ≤ B} (the per-layer error budget),
 *       the one of least measured time (summed over the timing M's: a decode step and a prefill
 *       chunk count alike); ties go to the lower ē, then the wider width. If no candidate is within
 *       B the layer keeps the widest candidate ({@link AbqWidth#WIDER_LAST}'s last) and is marked
 *       over budget.
 * </ol>
 *
 * <p><b>Optimality.</b> The layers' times add and the budget is per layer, so minimizing the total
 * time subject to every layer's bound is separable: each layer's least-time feasible candidate is
 * the exact optimum of the sum (over the layers that have a feasible candidate).
 *
 * <p><b>Monotonicity</b> (a tighter budget never lowers a layer's widths). Let B' < B and c the
 * choice under B. The feasible set under B' is a subset of that under B, and the choice is the
 * minimum of a fixed order (time, ē, wider first) independent of the budget, so if c is still
 * feasible it stays chosen. Otherwise ē(c) > B', and every d ≤ c has ē(d) ≥ ē(c) > B' (the max
 * in ē(d) runs over a superset of ē(c)'s), so the new choice is never at most as wide as c unless
 * it is c: it has more weight levels or more activation bits. With no feasible candidate the widest
 * one is taken, which as the maximum of a linear extension is not below any other candidate either.
 * On a chain of candidates (e.g. W2A8, W3A8, W4A8, W8A8) this is "the bits never go down"; between
 * incomparable widths (W6A6 and W4A8) a tighter budget may trade weight bits for activation bits.
 * The time of the choice never decreases and its ē never increases.
 */
public final class AbqWidthPolicy {
    /** ABQ-LLM's widths: W8A8, W6A6, W4A8, W4A4, W3A8, W2*A8 and W2A8. */
    public static final List<String> DEFAULT_CANDIDATES = List.of("W8A8", "W6A6", "W4A8", "W4A4", "W3A8", "W2*A8", "W2A8");
    /** The default per-layer budget on relative output MSE. */
    public static final double DEFAULT_ERROR_BUDGET = 0.02;
    /** Decode (M = 1) and a prefill chunk (M = 128). */
    public static final List<Integer> DEFAULT_TIMING_TOKENS = List.of(1, 128);

    private final List<AbqWidth> candidates;
    private final double errorBudget;
    private final List<Integer> timingTokens;

    /**
     * @param candidates the widths to choose from (at least one, each once)
     * @param errorBudget B, on relative output MSE ({@code Σ (y_q − y)² / Σ y²}), >= 0 (+∞: fastest everywhere)
     * @param timingTokens the M's the GEMM is timed at (each >= 1, at least one)
     */
    public AbqWidthPolicy(List<AbqWidth> candidates, double errorBudget, List<Integer> timingTokens) {
        if (candidates == null || candidates.isEmpty()) throw new IllegalArgumentException("at least one ABQ candidate width is required");
        Set<AbqWidth> seen = new HashSet<>();
        for (AbqWidth w : candidates) {
            if (w == null) throw new IllegalArgumentException("null ABQ candidate width");
            if (!seen.add(w)) throw new IllegalArgumentException("ABQ width " + w + " is listed twice in " + candidates);
        }
        if (!(errorBudget >= 0)) throw new IllegalArgumentException("the ABQ error budget (relative output MSE) must be >= 0, got " + errorBudget);
        if (timingTokens == null || timingTokens.isEmpty()) throw new IllegalArgumentException("at least one timing M (tokens per GEMM) is required");
        for (Integer m : timingTokens) {
            if (m == null || m < 1) throw new IllegalArgumentException("timing M (tokens per GEMM) must be >= 1, got " + m);
        }
        this.candidates = List.copyOf(candidates);
        this.errorBudget = errorBudget;
        this.timingTokens = List.copyOf(timingTokens);
    }

    /** The policy from command-line forms: widths such as {@code W4A8}/{@code w2*a8} (comma-separated allowed). */
    public static AbqWidthPolicy parse(List<String> candidates, double errorBudget, List<Integer> timingTokens) {
        return new AbqWidthPolicy(AbqWidth.parseList(candidates), errorBudget, timingTokens);
    }

    /** {@link #DEFAULT_CANDIDATES}, {@link #DEFAULT_ERROR_BUDGET}, {@link #DEFAULT_TIMING_TOKENS}. */
    public static AbqWidthPolicy defaults() {
        return parse(DEFAULT_CANDIDATES, DEFAULT_ERROR_BUDGET, DEFAULT_TIMING_TOKENS);
    }

    /** This policy with another error budget. */
    public AbqWidthPolicy withErrorBudget(double budget) {
        return new AbqWidthPolicy(candidates, budget, timingTokens);
    }

    public List<AbqWidth> candidates() {
        return candidates;
    }

    public double errorBudget() {
        return errorBudget;
    }

    public List<Integer> timingTokens() {
        return timingTokens;
    }

    /** The widest candidate: the last in {@link AbqWidth#WIDER_LAST}. */
    public AbqWidth widest() {
        return candidates.stream().max(AbqWidth.WIDER_LAST).orElseThrow();
    }

    /**
     * Each layer's width by the rule above. Every layer must carry figures for exactly this policy's
     * candidates, with one time per timing M; layer names must be distinct.
     */
    public AbqWidthReport decide(List<LayerWidthFigures> layers) {
        if (layers == null || layers.isEmpty()) throw new IllegalArgumentException("the ABQ width policy needs at least one measured layer");
        Set<String> names = new HashSet<>();
        List<AbqWidthReport.Decision> out = new ArrayList<>();
        for (LayerWidthFigures l : layers) {
            if (!names.add(l.layer())) throw new IllegalArgumentException("layer " + l.layer() + " appears twice");
            out.add(decide(l));
        }
        return new AbqWidthReport(this, out);
    }

    private AbqWidthReport.Decision decide(LayerWidthFigures l) {
        if (l.candidates().size() != candidates.size()) {
            throw new IllegalArgumentException(l.layer() + ": figures for " + widths(l) + ", the policy's candidates are " + candidates);
        }
        for (AbqWidth w : candidates) l.candidate(w); // each measured (names the missing one)
        for (LayerWidthFigures.Candidate c : l.candidates()) {
            if (c.seconds().size() != timingTokens.size()) {
                throw new IllegalArgumentException(l.layer() + " " + c.width() + ": " + c.seconds().size() + " times for timing M's " + timingTokens);
            }
        }
        List<LayerWidthFigures.Candidate> cs = l.candidates();
        double[] bound = new double[cs.size()];
        for (int i = 0; i < cs.size(); i++) {
            double b = cs.get(i).relativeError();
            for (LayerWidthFigures.Candidate d : cs) {
                if (cs.get(i).width().atMostAsWideAs(d.width())) b = Math.max(b, d.relativeError());
            }
            bound[i] = b;
        }
        Comparator<Integer> order = Comparator.comparingDouble((Integer i) -> cs.get(i).totalSeconds())
                .thenComparingDouble(i -> bound[i])
                .thenComparing((Integer i) -> cs.get(i).width(), AbqWidth.WIDER_LAST.reversed());
        int best = -1;
        for (int i = 0; i < cs.size(); i++) {
            if (bound[i] <= errorBudget && (best < 0 || order.compare(i, best) < 0)) best = i;
        }
        boolean over = best < 0;
        if (over) {
            AbqWidth widest = widest();
            for (int i = 0; i < cs.size(); i++) if (cs.get(i).width().equals(widest)) best = i;
        }
        return new AbqWidthReport.Decision(l, best, bound, over);
    }

    private static String widths(LayerWidthFigures l) {
        return l.candidates().stream().map(c -> c.width().toString()).collect(Collectors.joining(", ", "[", "]"));
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "ABQ widths per layer from %s: least measured bit-plane GEMM time (M = %s) within relative "
                        + "output error %.3g (RTN, calibration sample); over budget: the widest, %s", candidates,
                timingTokens.stream().map(String::valueOf).collect(Collectors.joining(" + ")), errorBudget, widest());
    }
}
