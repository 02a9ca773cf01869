package lowbit.calibrate;

/**
 * Cosine decay of the learning rate over {@code totalSteps} (PyTorch's {@code CosineAnnealingLR}
 * without restarts): factor {@code f(t) = m + (1 − m)·(1 + cos(π·t/T))/2}, from 1 at step 0 to
 * the floor {@code m} at step T (FlatQuant: m = 1e-3).
 */
public record CosineSchedule(int totalSteps, double minFactor) {
    public CosineSchedule {
        if (totalSteps < 1) throw new IllegalArgumentException("total steps " + totalSteps + " must be >= 1");
        if (!(minFactor >= 0 && minFactor <= 1)) throw new IllegalArgumentException("floor " + minFactor + " must be in [0, 1]");
    }

    /** The factor for step {@code step} (0-based; clamped to the last step). */
    public double factor(int step) {
        if (step < 0) throw new IllegalArgumentException("step " + step);
        double t = Math.min(step, totalSteps);
        return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * t / totalSteps));
    }
}
