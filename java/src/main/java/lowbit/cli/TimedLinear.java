package lowbit.cli;

import java.util.concurrent.atomic.LongAdder;
import lowbit.model.LinearOp;

/** A {@link LinearOp} that adds the wall time of each call of its delegate to a counter (for per-op profiles). */
final class TimedLinear implements LinearOp {
    private final LinearOp delegate;
    private final LongAdder nanos;

    TimedLinear(LinearOp delegate, LongAdder nanos) {
        this.delegate = delegate;
        this.nanos = nanos;
    }

    LinearOp delegate() {
        return delegate;
    }

    @Override
    public int inFeatures() {
        return delegate.inFeatures();
    }

    @Override
    public int outFeatures() {
        return delegate.outFeatures();
    }

    @Override
    public void forward(float[] x, int tokens, float[] y) {
        long start = System.nanoTime();
        delegate.forward(x, tokens, y);
        nanos.add(System.nanoTime() - start);
    }

    @Override
    public void close() {
        delegate.close();
    }
}
