package lowbit.abq;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@link AbqWidthPolicy}'s decision: per layer the chosen width with its measured error and time,
 * whether every candidate was over budget (the widest then kept), and every candidate's figures.
 * {@link #toTable()} prints it; times are in microseconds, summed over the timing M's.
 */
public final class AbqWidthReport {
    /**
     * One layer's decision.
     *
     * @param figures the layer's measured figures
     * @param chosen index of the chosen candidate in {@code figures.candidates()}
     * @param budgetErrors per candidate, the error the budget was checked on ({@link AbqWidthPolicy}'s
     *     ē: the largest measured error among the widths at least as wide)
     * @param overBudget true when no candidate was within the budget and the widest was kept
     */
    public record Decision(LayerWidthFigures figures, int chosen, double[] budgetErrors, boolean overBudget) {
        public Decision {
            if (chosen < 0 || chosen >= figures.candidates().size()) throw new IllegalArgumentException("chosen index " + chosen);
            if (budgetErrors.length != figures.candidates().size()) throw new IllegalArgumentException("one budget error per candidate");
            budgetErrors = budgetErrors.clone();
        }

        public String layer() {
            return figures.layer();
        }

        public LayerWidthFigures.Candidate choice() {
            return figures.candidates().get(chosen);
        }

        public AbqWidth width() {
            return choice().width();
        }

        @Override
        public double[] budgetErrors() {
            return budgetErrors.clone();
        }
    }

    private final AbqWidthPolicy policy;
    private final List<Decision> decisions;

    AbqWidthReport(AbqWidthPolicy policy, List<Decision> decisions) {
        this.policy = policy;
        this.decisions = List.copyOf(decisions);
    }

    public AbqWidthPolicy policy() {
        return policy;
    }

    public List<Decision> decisions() {
        return decisions;
    }

    public Decision decision(String layer) {
        for (Decision d : decisions) if (d.layer().equals(layer)) return d;
        throw new IllegalArgumentException("no layer named '" + layer + "' in the ABQ width report");
    }

    /** Chosen width by layer, in the layers' order. */
    public Map<String, AbqWidth> widths() {
        Map<String, AbqWidth> m = new LinkedHashMap<>();
        for (Decision d : decisions) m.put(d.layer(), d.width());
        return m;
    }

    /** Layers per chosen width, widest first. */
    public Map<AbqWidth, Integer> histogram() {
        Map<AbqWidth, Integer> m = new LinkedHashMap<>();
        policy.candidates().stream().sorted(AbqWidth.WIDER_LAST.reversed()).forEach(w -> m.put(w, 0));
        for (Decision d : decisions) m.merge(d.width(), 1, Integer::sum);
        m.values().removeIf(v -> v == 0);
        return m;
    }

    /** Total measured time of the chosen widths (seconds, summed over layers and timing M's). */
    public double totalSeconds() {
        double t = 0;
        for (Decision d : decisions) t += d.choice().totalSeconds();
        return t;
    }

    /** Total measured time with every layer at {@code w}. */
    public double totalSecondsAt(AbqWidth w) {
        double t = 0;
        for (Decision d : decisions) t += d.figures().candidate(w).totalSeconds();
        return t;
    }

    public String toTable() {
        StringBuilder b = new StringBuilder();
        int lw = 5;
        for (Decision d : decisions) lw = Math.max(lw, d.layer().length());
        b.append(String.format(Locale.ROOT, "ABQ width policy: %s%n", policy));
        b.append(String.format(Locale.ROOT, "%-" + lw + "s  %6s  %6s  %-7s  %9s  %10s  %s%n", "layer", "N", "K", "width", "rel.err",
                "time(us)", "candidates: width rel.err[budget err if larger] time(us)"));
        for (Decision d : decisions) {
            LayerWidthFigures f = d.figures();
            StringBuilder cands = new StringBuilder();
            for (int i = 0; i < f.candidates().size(); i++) {
                LayerWidthFigures.Candidate c = f.candidates().get(i);
                if (i > 0) cands.append("  ");
                cands.append(String.format(Locale.ROOT, "%s %.2e", c.width(), c.relativeError()));
                if (d.budgetErrors[i] > c.relativeError()) cands.append(String.format(Locale.ROOT, "[%.2e]", d.budgetErrors[i]));
                cands.append(String.format(Locale.ROOT, " %.1f", 1e6 * c.totalSeconds()));
            }
            b.append(String.format(Locale.ROOT, "%-" + lw + "s  %6d  %6d  %-7s  %9.3e  %10.1f  %s%n", d.layer(), f.outFeatures(),
                    f.inFeatures(), d.width() + (d.overBudget() ? "!" : ""), d.choice().relativeError(), 1e6 * d.choice().totalSeconds(),
                    cands));
        }
        long over = decisions.stream().filter(Decision::overBudget).count();
        if (over > 0) {
            b.append(String.format(Locale.ROOT, "! %d layer(s) over budget at every candidate: kept at the widest, %s%n", over, policy.widest()));
        }
        b.append("layers per width:");
        histogram().forEach((w, n) -> b.append(' ').append(w).append(' ').append(n));
        AbqWidth widest = policy.widest();
        b.append(String.format(Locale.ROOT, "%nmeasured GEMM time, all layers: chosen %.1f us, all at %s %.1f us%n", 1e6 * totalSeconds(), widest,
                1e6 * totalSecondsAt(widest)));
        return b.toString();
    }
}
