package lowbit.pipeline;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import lowbit.model.KvCache;
import lowbit.model.LinearInputHook;
import lowbit.model.DecoderModel;
import lowbit.quant.CalibrationStats;

/**
 * Calibration statistics of every block linear layer's input, gathered with the model's input
 * hooks while calibration text runs through it. Layers that read the same activation share one
 * {@link CalibrationStats}: {@code attn_q/k/v} read {@code blk.N.attn_norm}'s output and {@code
 * ffn_gate/up} read {@code blk.N.ffn_norm}'s, so the stats are keyed by the input ({@link
 * #inputOf}). Memory is fixed by {@link CalibrationStats.Options} and does not grow with the
 * number of calibration tokens. The LM head is not calibrated (it stays FP32).
 */
public final class ModelCalibration {
    private final Map<String, CalibrationStats> stats;
    private final long tokens;

    private ModelCalibration(Map<String, CalibrationStats> stats, long tokens) {
        this.stats = stats;
        this.tokens = tokens;
    }

    /**
     * The name of the activation that block linear {@code layer} reads: {@code blk.N.attn_norm}
     * for q/k/v, {@code blk.N.ffn_norm} for gate/up, the layer itself for attn_output and ffn_down.
     */
    public static String inputOf(String layer) {
        int dot = layer.lastIndexOf('.');
        if (!layer.startsWith("blk.") || dot < 0) {
            throw new IllegalArgumentException("not a block linear layer: " + layer);
        }
        String block = layer.substring(0, dot);
        switch (layer.substring(dot + 1)) {
            case "attn_q":
            case "attn_k":
            case "attn_v":
                return block + ".attn_norm";
            case "ffn_gate":
            case "ffn_up":
                return block + ".ffn_norm";
            case "attn_output":
            case "ffn_down":
                return layer;
            default:
                throw new IllegalArgumentException("not a block linear layer: " + layer);
        }
    }

    /**
     * Runs {@code tokens} through {@code model} in consecutive windows of {@code window} tokens
     * (each from an empty KV cache; a trailing partial window runs too) and observes every block
     * linear layer's input.
     */
    public static ModelCalibration run(DecoderModel model, int[] tokens, int window, CalibrationStats.Options options,
                                       PrintStream progress) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("calibration needs at least one token");
        }
        int context = model.shape().contextLength();
        if (window < 1 || window > context) {
            throw new IllegalArgumentException("calibration window " + window + " must be in 1.." + context);
        }
        // layers that read one activation share its statistics: observe it at the first of them
        java.util.Set<String> firstReaders = new java.util.HashSet<>();
        java.util.Set<String> inputs = new java.util.HashSet<>();
        for (String name : model.linearNames()) {
            if (name.startsWith("blk.") && inputs.add(inputOf(name))) firstReaders.add(name);
        }
        Map<String, CalibrationStats> stats = new LinkedHashMap<>();
        LinearInputHook hook = (layer, x, n, in) -> {
            if (!layer.startsWith("blk.")) return;
            if (!firstReaders.contains(layer)) return;
            String input = inputOf(layer);
            CalibrationStats s = stats.computeIfAbsent(input, name -> CalibrationStats.create(name, in, options));
            s.observe(x.length == n * in ? x : Arrays.copyOf(x, n * in), n);
        };
        model.addInputHook(hook);
        long start = System.nanoTime();
        try {
            KvCache cache = model.newKvCache(window);
            for (int from = 0; from < tokens.length; from += window) {
                cache.reset();
                model.forwardHidden(cache, Arrays.copyOfRange(tokens, from, Math.min(tokens.length, from + window)));
                if (progress != null) {
                    progress.printf("calibration: %d / %d tokens (%.0f s)%n", Math.min(tokens.length, from + window),
                            tokens.length, (System.nanoTime() - start) / 1e9);
                }
            }
        } finally {
            model.removeInputHook(hook);
        }
        return new ModelCalibration(stats, tokens.length);
    }

    /** Statistics of the input that {@code layer} reads. */
    public CalibrationStats statsFor(String layer) {
        CalibrationStats s = stats.get(inputOf(layer));
        if (s == null) throw new IllegalArgumentException("no calibration statistics for " + layer + " (input " + inputOf(layer) + ")");
        return s;
    }

    /** Calibration tokens run through the model. */
    public long tokens() {
        return tokens;
    }
}
