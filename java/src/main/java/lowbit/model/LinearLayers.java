package lowbit.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The named linear layers of a decoder and the hooks that observe their inputs: {@link #run}
 * calls every hook, then the layer. Names keep their insertion (execution) order.
 */
final class LinearLayers {
    private final Map<String, LinearOp> layers = new LinkedHashMap<>();
    private final List<LinearInputHook> hooks = new CopyOnWriteArrayList<>();

    void add(String name, LinearOp op) {
        if (layers.putIfAbsent(name, op) != null) throw new IllegalArgumentException("duplicate linear layer " + name);
    }

    List<String> names() {
        return Collections.unmodifiableList(new ArrayList<>(layers.keySet()));
    }

    LinearOp get(String name) {
        LinearOp op = layers.get(name);
        if (op == null) throw new IllegalArgumentException("no linear layer " + name + "; names look like blk.0.attn_q or output");
        return op;
    }

    void replace(String name, LinearOp op) {
        LinearOp old = get(name);
        if (op.inFeatures() != old.inFeatures() || op.outFeatures() != old.outFeatures()) {
            throw new IllegalArgumentException(name + " is " + old.outFeatures() + "×" + old.inFeatures()
                    + ", the replacement " + op.outFeatures() + "×" + op.inFeatures());
        }
        layers.put(name, op);
    }

    void addHook(LinearInputHook hook) {
        hooks.add(hook);
    }

    void removeHook(LinearInputHook hook) {
        hooks.remove(hook);
    }

    /** Up to this many tokens (system property {@code lowbit.concurrentTokens}, default 8), independent layers reading one input run concurrently ({@link #runAll}). */
    static final int CONCURRENT_TOKENS = Integer.getInteger("lowbit.concurrentTokens", 8);

    /**
     * {@code ys[i] = layer names[i](x)}: layers that read the same input (q/k/v, gate/up). For a few
     * tokens (decode) and no hooks they run concurrently, one task per layer, because each is too
     * small to occupy every thread on its own; otherwise in order. Different layers then run at the
     * same time, so a LinearOp must not share unsynchronized state with other layers.
     */
    void runAll(String[] names, float[] x, int tokens, float[][] ys) {
        if (tokens > CONCURRENT_TOKENS || !hooks.isEmpty() || names.length == 1) {
            for (int i = 0; i < names.length; i++) run(names[i], x, tokens, ys[i]);
            return;
        }
        java.util.stream.IntStream.range(0, names.length).parallel().forEach(i -> layers.get(names[i]).forward(x, tokens, ys[i]));
    }

    /** {@code y = layer(x)} for {@code tokens} rows, after the hooks have seen {@code x}. */
    void run(String name, float[] x, int tokens, float[] y) {
        LinearOp op = layers.get(name);
        for (LinearInputHook hook : hooks) hook.onInput(name, x, tokens, op.inFeatures());
        op.forward(x, tokens, y);
    }
}
