package lowbit.calibrate;

import java.util.stream.IntStream;

/**
 * Fake quantization (quantize, then dequantize) with the straight-through estimator, the quantizer
 * of OmniQuant / ABQ-LLM / FlatQuant calibration. Per scale group (see {@link QuantSpec}) with range
 * {@code [min, max]} clipped to {@code [σ(β)·min, σ(γ)·max]} by optional {@link ClipFactors}:
 *
 * <pre>
 *   asymmetric: s = (max_c − min_c)/qmax,  z = round(−min_c/s),  y = (clamp(round(x/s) + z, 0, qmax) − z)·s
 *   symmetric:  s = max(|min_c|, |max_c|)/qmax,              y = clamp(round(x/s), qmin, qmax)·s
 * </pre>
 *
 * with round half to even and s floored at {@value #SCALE_FLOOR}. Backward: each {@code round}
 * passes its gradient straight through (d round(u) = du), {@code clamp} passes it only inside the
 * range, and the gradient reaches x, the group's min and max elements through s and z, and the clip
 * logits through the sigmoid. In range this gives {@code dy/dx = 1}, {@code dy/ds = round(x/s) −
 * x/s}; clamped: {@code dy/dx = 0}, {@code dy/ds = q − z − min_c/s}, {@code dy/dmin_c} += 1
 * (asymmetric; {@code q} for symmetric).
 */
public final class FakeQuant {
    static final double SCALE_FLOOR = 1e-10;

    /**
     * The rounding function, by slot (element index, then group zero-points); tests freeze it.
     * Elements are rounded as {@code round(x/s + z)}, equal to {@code round(x/s) + z} for the
     * integer zero-point z.
     */
    public interface Rounding {
        double round(double v, int slot);
    }

    static final Rounding NEAREST_EVEN = (v, slot) -> Math.rint(v);

    private FakeQuant() {}

    /** {@code clip} null: the full range (round-to-nearest). */
    public static Var apply(Tape tape, Var x, QuantSpec spec, ClipFactors clip) {
        return apply(tape, x, spec, clip, NEAREST_EVEN);
    }

    /** As {@link #apply(Tape, Var, QuantSpec, ClipFactors)} with an explicit rounding function (gradient checks freeze it). */
    public static Var apply(Tape tape, Var x, QuantSpec spec, ClipFactors clip, Rounding rounding) {
        int len = spec.groupLength(x.rows, x.cols);
        int groups = x.value.length / len;
        Var logits = clip == null ? null : clip.param().var();
        if (clip != null && clip.count() != 1 && clip.count() != groups) {
            throw new IllegalArgumentException("clip factors: " + clip.count() + " pairs for " + groups + " quantization groups");
        }
        int qmax = spec.qmax(), qmin = spec.qmin();
        double[] y = new double[x.value.length];
        double[] s = new double[groups], z = new double[groups], lo = new double[groups], hi = new double[groups];
        int[] argMin = new int[groups], argMax = new int[groups];
        boolean[] floored = new boolean[groups];
        boolean[] inRange = new boolean[x.value.length];
        double[] level = new double[x.value.length];
        IntStream range = IntStream.range(0, groups);
        (x.value.length >= 1 << 15 ? range.parallel() : range).forEach(g -> {
            int o = g * len;
            int iMin = o, iMax = o;
            for (int i = o; i < o + len; i++) {
                double v = x.value[i];
                if (!Double.isFinite(v)) throw new IllegalArgumentException("fake quantization input " + v + " at index " + i + " is not finite");
                if (v < x.value[iMin]) iMin = i;
                if (v > x.value[iMax]) iMax = i;
            }
            argMin[g] = iMin;
            argMax[g] = iMax;
            int c = clip == null ? -1 : clip.count() == 1 ? 0 : g;
            hi[g] = (c < 0 ? 1 : ClipFactors.sigmoid(logits.value[2 * c])) * x.value[iMax];
            lo[g] = (c < 0 ? 1 : ClipFactors.sigmoid(logits.value[2 * c + 1])) * x.value[iMin];
            double scale = spec.symmetric() ? Math.max(Math.abs(lo[g]), Math.abs(hi[g])) / qmax : (hi[g] - lo[g]) / qmax;
            if (!(scale >= SCALE_FLOOR)) {
                scale = SCALE_FLOOR;
                floored[g] = true;
            }
            s[g] = scale;
            z[g] = spec.symmetric() ? 0 : rounding.round(-lo[g] / scale, x.value.length + g);
            for (int i = o; i < o + len; i++) {
                double q = rounding.round(x.value[i] / scale + z[g], i); // = round(x/s) + z, z being an integer
                inRange[i] = q >= qmin && q <= qmax;
                level[i] = Math.min(qmax, Math.max(qmin, q));
                y[i] = (level[i] - z[g]) * scale;
            }
        });
        Var out = tape.result(y, x.rows, x.cols, x, logits);
        tape.onBackward(out, () -> {
            double[] dy = out.grad;
            double[] dx = x.requiresGrad ? x.gradArray() : null;
            double[] dLogit = new double[groups * 2]; // per group, summed into shared logits below
            IntStream all = IntStream.range(0, groups);
            (x.value.length >= 1 << 15 ? all.parallel() : all).forEach(g -> {
                int o = g * len;
                double gs = 0, gLoDirect = 0;
                for (int i = o; i < o + len; i++) {
                    double u = x.value[i] / s[g];
                    double q = level[i];
                    if (inRange[i]) {
                        if (dx != null) dx[i] += dy[i];
                        gs += dy[i] * (q - z[g] - u);
                    } else if (spec.symmetric()) {
                        gs += dy[i] * q;
                    } else {
                        gs += dy[i] * (q - z[g] - lo[g] / s[g]);
                        gLoDirect += dy[i];
                    }
                }
                double gHi = 0, gLo = gLoDirect;
                if (!floored[g]) {
                    if (spec.symmetric()) {
                        double gAmax = gs / qmax;
                        if (Math.abs(hi[g]) >= Math.abs(lo[g])) gHi += gAmax * Math.signum(hi[g]);
                        else gLo += gAmax * Math.signum(lo[g]);
                    } else {
                        gHi += gs / qmax;
                        gLo -= gs / qmax;
                    }
                }
                int c = clip == null ? -1 : clip.count() == 1 ? 0 : g;
                double fHi = c < 0 ? 1 : ClipFactors.sigmoid(logits.value[2 * c]);
                double fLo = c < 0 ? 1 : ClipFactors.sigmoid(logits.value[2 * c + 1]);
                if (dx != null) {
                    dx[argMax[g]] += gHi * fHi;
                    dx[argMin[g]] += gLo * fLo;
                }
                dLogit[2 * g] = gHi * x.value[argMax[g]] * fHi * (1 - fHi);
                dLogit[2 * g + 1] = gLo * x.value[argMin[g]] * fLo * (1 - fLo);
            });
            if (logits != null && logits.requiresGrad) {
                double[] gl = logits.gradArray();
                for (int g = 0; g < groups; g++) {
                    int c = clip.count() == 1 ? 0 : g;
                    gl[2 * c] += dLogit[2 * g];
                    gl[2 * c + 1] += dLogit[2 * g + 1];
                }
            }
        });
        return out;
    }
}
