package lowbit.quant;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Chooses INT4, INT8 or (last resort) FP16 per layer from the errors {@link FlattenQuantizer}
 * measured. Error is the relative output MSE of a layer; compute is {@code 2 N K'} per token with
 * the K' of the chosen setting.
 *
 * <p><b>Error budget</b> ({@link #errorBudget}): each layer takes the lowest width whose error is
 * within the budget B: INT4 if {@code e4 <= B}, else INT8 if {@code e8 <= B}, else FP16. This
 * maximizes the INT4 share subject to the budget (every layer that can run at INT4 does).
 *
 * <p><b>INT4 share target</b> ({@link #int4Share}, FlattenQuant's "most sensitive layers at 8 bits,
 * the rest at 4"): rank layers by INT4 error (least sensitive first, ties by name); walk the ranking
 * adding layers to the INT4 set until the nominal INT4 share (INT4 set at INT4, others at INT8)
 * reaches the target. The budget is then applied on top: an INT4 candidate over budget falls back
 * to INT8 (or FP16), and so does any other layer. The ranking and cut-off do not depend on B, so
 * under either policy a tighter budget never lowers any layer's bit width; the report gives the
 * share actually reached.
 */
public final class BitWidthPolicy {
    private final double budget;
    private final double targetShare;

    private BitWidthPolicy(double budget, double targetShare) {
        if (!(budget >= 0)) {
            throw new IllegalArgumentException("error budget must be >= 0 (relative output MSE), got " + budget);
        }
        if (!(targetShare >= 0 && targetShare <= 1) && !Double.isNaN(targetShare)) {
            throw new IllegalArgumentException("target INT4 share must be in [0, 1], got " + targetShare);
        }
        this.budget = budget;
        this.targetShare = targetShare;
    }

    /** Lowest width within {@code maxRelativeError} per layer. */
    public static BitWidthPolicy errorBudget(double maxRelativeError) {
        return new BitWidthPolicy(maxRelativeError, Double.NaN);
    }

    /** Least sensitive layers at INT4 until {@code targetShare} of compute, capped by the budget. */
    public static BitWidthPolicy int4Share(double targetShare, double maxRelativeError) {
        if (Double.isNaN(targetShare)) {
            throw new IllegalArgumentException("target INT4 share must be in [0, 1], got NaN");
        }
        return new BitWidthPolicy(maxRelativeError, targetShare);
    }

    /** The paper's reported mix: 48.29% of linear-layer compute at INT4, the rest at INT8. */
    public static BitWidthPolicy flattenQuantPaper() {
        return int4Share(0.4829, Double.POSITIVE_INFINITY);
    }

    public double budget() {
        return budget;
    }

    /** The target INT4 share, or NaN for the pure error-budget policy. */
    public double targetShare() {
        return targetShare;
    }

    public QuantizationReport decide(List<LayerEvaluation> layers) {
        if (layers.isEmpty()) {
            throw new IllegalArgumentException("bit-width policy needs at least one evaluated layer");
        }
        Set<String> names = new HashSet<>();
        for (LayerEvaluation l : layers) {
            if (!names.add(l.name())) {
                throw new IllegalArgumentException("layer name '" + l.name() + "' appears twice");
            }
        }
        Set<String> int4Candidates = new HashSet<>();
        if (Double.isNaN(targetShare)) {
            for (LayerEvaluation l : layers) {
                int4Candidates.add(l.name());
            }
        } else {
            List<LayerEvaluation> ranked = new ArrayList<>(layers);
            ranked.sort(Comparator.comparingDouble((LayerEvaluation l) -> l.setting(Precision.INT4).relativeError())
                    .thenComparing(LayerEvaluation::name));
            double total = 0;
            for (LayerEvaluation l : layers) {
                total += l.flopsPerToken(Precision.INT8);
            }
            double int4 = 0;
            for (LayerEvaluation l : ranked) {
                if (total > 0 && int4 / total >= targetShare) {
                    break;
                }
                int4Candidates.add(l.name());
                int4 += l.flopsPerToken(Precision.INT4);
                total += l.flopsPerToken(Precision.INT4) - l.flopsPerToken(Precision.INT8);
            }
        }
        List<QuantizationReport.Row> rows = new ArrayList<>();
        for (LayerEvaluation l : layers) {
            Precision p;
            if (int4Candidates.contains(l.name()) && l.setting(Precision.INT4).relativeError() <= budget) {
                p = Precision.INT4;
            } else if (l.setting(Precision.INT8).relativeError() <= budget) {
                p = Precision.INT8;
            } else {
                p = Precision.FP16;
            }
            PrecisionSetting s = l.setting(p);
            rows.add(new QuantizationReport.Row(l.name(), p, l.inFeatures(), s.expandedFeatures(), l.outFeatures(),
                    s.threshold(), s.alpha(), s.relativeError(), l.flopsPerToken(p)));
        }
        return new QuantizationReport(describe(), rows);
    }

    String describe() {
        return Double.isNaN(targetShare) ? "error budget " + budget
                : "INT4 share target " + targetShare + ", error budget " + budget;
    }
}
