package lowbit.flatquant;

import lowbit.calibrate.ClipFactors;
import lowbit.calibrate.FakeQuant;
import lowbit.calibrate.QuantSpec;
import lowbit.calibrate.Tape;
import lowbit.calibrate.Var;

/**
 * The fake quantizer the hooks call, with a key naming the quantizer (a site or a linear layer) so
 * gradient checks can freeze each quantizer's rounding. {@link #FAKE_QUANT} is the engine's {@link
 * FakeQuant} with round half to even.
 */
@FunctionalInterface
public interface Quantizer {
    Quantizer FAKE_QUANT = (tape, x, spec, clip, key) -> FakeQuant.apply(tape, x, spec, clip);

    Var apply(Tape tape, Var x, QuantSpec spec, ClipFactors clip, String key);
}
