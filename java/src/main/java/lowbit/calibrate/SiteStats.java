package lowbit.calibrate;

import java.util.EnumMap;
import java.util.Map;

/**
 * Per-channel absolute maxima of a block's activations at each {@link Site}, over the FP pass of
 * all calibration samples (the statistics SmoothQuant-style scale inits need). Collected by the
 * pipeline through {@link #hooks}.
 */
public final class SiteStats {
    private final Map<Site, double[]> absMax = new EnumMap<>(Site.class);

    /** Channel absolute maxima at {@code site} (a copy). */
    public double[] absMax(Site site) {
        double[] v = absMax.get(site);
        if (v == null) throw new IllegalArgumentException("no statistics for " + site);
        return v.clone();
    }

    /** Hooks that leave the block full precision and record every site's channel maxima. */
    BlockHooks hooks() {
        return tape -> new BlockHooks.Pass() {
            @Override
            public Var activation(Site site, Var x) {
                double[] m = absMax.computeIfAbsent(site, s -> new double[x.cols]);
                for (int r = 0; r < x.rows; r++) {
                    for (int c = 0; c < x.cols; c++) m[c] = Math.max(m[c], Math.abs(x.value[r * x.cols + c]));
                }
                return x;
            }
        };
    }
}
