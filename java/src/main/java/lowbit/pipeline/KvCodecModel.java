package lowbit.pipeline;

import java.util.List;
import lowbit.model.DecoderModel;
import lowbit.model.KvCache;
import lowbit.model.LinearInputHook;
import lowbit.model.LinearOp;

/**
 * A {@link DecoderModel} whose KV caches apply a {@link KvCache.Codec} (KV-cache quantization and
 * transforms, e.g. FlatQuant's KV4): everything else is the wrapped model's, and {@link #newKvCache}
 * hands out the wrapped model's caches with the codec set (packed caches when
 * the codec stores packed codes). Callers that create caches through the
 * model (perplexity, generation) then run the quantized cache without knowing it.
 */
final class KvCodecModel implements DecoderModel {
    private final DecoderModel model;
    private final KvCache.Codec codec;

    KvCodecModel(DecoderModel model, KvCache.Codec codec) {
        this.model = java.util.Objects.requireNonNull(model, "model");
        this.codec = java.util.Objects.requireNonNull(codec, "codec");
    }

    /** The wrapped model. */
    DecoderModel inner() {
        return model;
    }

    @Override
    public KvCache newKvCache(int capacity) {
        return model.newKvCache(capacity, codec);
    }

    @Override
    public String architecture() {
        return model.architecture();
    }

    @Override
    public Shape shape() {
        return model.shape();
    }

    @Override
    public List<String> linearNames() {
        return model.linearNames();
    }

    @Override
    public LinearOp linear(String name) {
        return model.linear(name);
    }

    @Override
    public void replaceLinear(String name, LinearOp op) {
        model.replaceLinear(name, op);
    }

    @Override
    public float[] normWeight(String name) {
        return model.normWeight(name);
    }

    @Override
    public void setNormWeight(String name, float[] weight) {
        model.setNormWeight(name, weight);
    }

    @Override
    public float[] normBias(String name) {
        return model.normBias(name);
    }

    @Override
    public void setNormBias(String name, float[] bias) {
        model.setNormBias(name, bias);
    }

    @Override
    public boolean normsFeedLinears() {
        return model.normsFeedLinears();
    }

    @Override
    public void addInputHook(LinearInputHook hook) {
        model.addInputHook(hook);
    }

    @Override
    public void removeInputHook(LinearInputHook hook) {
        model.removeInputHook(hook);
    }

    @Override
    public float[] forward(KvCache cache, int[] tokens) {
        requireCodec(cache);
        return model.forward(cache, tokens);
    }

    @Override
    public float[] forwardHidden(KvCache cache, int[] tokens) {
        requireCodec(cache);
        return model.forwardHidden(cache, tokens);
    }

    /** A cache made elsewhere would silently skip the codec: refuse it. */
    private void requireCodec(KvCache cache) {
        if (cache.codec() != codec) throw new IllegalArgumentException("this model quantizes its KV cache: use a cache from its newKvCache");
    }

    @Override
    public float[] logits(float[] hidden, int rows) {
        return model.logits(hidden, rows);
    }
}
