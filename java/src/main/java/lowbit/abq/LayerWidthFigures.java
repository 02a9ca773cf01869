package lowbit.abq;

import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * What {@link AbqWidthPolicy} decides a layer's width from: per candidate width, the relative output
 * error measured on calibration activations and the bit-plane GEMM's measured time at each timing
 * M ({@link AbqWidthPolicy#timingTokens}, e.g. decode M = 1 and a prefill M). Made by {@link
 * WidthMeasurement}, or written by hand in tests.
 *
 * @param layer the layer's name
 * @param outFeatures N
 * @param inFeatures K
 * @param candidates one per candidate width, each width once
 */
public record LayerWidthFigures(String layer, int outFeatures, int inFeatures, List<Candidate> candidates) {
    /**
     * One width's figures.
     *
     * @param relativeError {@code Σ (y_q − y)² / Σ y²} over the calibration sample, y the FP64 product
     * @param seconds the GEMM's (median) time at each timing M, in the policy's order
     */
    public record Candidate(AbqWidth width, double relativeError, List<Double> seconds) {
        public Candidate {
            Objects.requireNonNull(width, "width");
            if (!(relativeError >= 0)) throw new IllegalArgumentException(width + ": relative error must be >= 0, got " + relativeError);
            if (seconds == null || seconds.isEmpty()) throw new IllegalArgumentException(width + ": no measured time");
            for (Double s : seconds) {
                if (s == null || !(s >= 0) || Double.isInfinite(s)) {
                    throw new IllegalArgumentException(width + ": measured time must be finite and >= 0, got " + s);
                }
            }
            seconds = List.copyOf(seconds);
        }

        /** The time summed over the timing Ms: what the policy minimizes. */
        public double totalSeconds() {
            double t = 0;
            for (double s : seconds) t += s;
            return t;
        }
    }

    public LayerWidthFigures {
        Objects.requireNonNull(layer, "layer");
        if (outFeatures < 1 || inFeatures < 1) {
            throw new IllegalArgumentException(layer + ": shape must be positive, got " + outFeatures + " x " + inFeatures);
        }
        if (candidates == null || candidates.isEmpty()) throw new IllegalArgumentException(layer + ": no candidate figures");
        Set<AbqWidth> seen = new HashSet<>();
        for (Candidate c : candidates) {
            if (!seen.add(c.width())) throw new IllegalArgumentException(layer + ": width " + c.width() + " appears twice");
            if (c.seconds().size() != candidates.get(0).seconds().size()) {
                throw new IllegalArgumentException(layer + ": every candidate needs a time per timing M");
            }
        }
        candidates = List.copyOf(candidates);
    }

    /** The figures of {@code width}; throws if it was not measured. */
    public Candidate candidate(AbqWidth width) {
        for (Candidate c : candidates) if (c.width().equals(width)) return c;
        throw new IllegalArgumentException(layer + ": width " + width + " was not measured");
    }
}
