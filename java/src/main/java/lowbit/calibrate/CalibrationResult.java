package lowbit.calibrate;

import java.util.List;
import java.util.Map;

/**
 * A finished (or resumed and finished) run: one report per calibrated block and the learned
 * parameters by name ({@code blk.N....}), as written to the checkpoint.
 */
public record CalibrationResult(List<BlockReport> reports, Map<String, double[]> params) {
    public CalibrationResult {
        reports = List.copyOf(reports);
        params = Map.copyOf(params);
    }
}
