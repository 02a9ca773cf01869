package lowbit.abq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link AbqWidthPolicy} on hand-written figure tables (no clock involved): the expected widths,
 * the error bound over wider widths, the fallback to the widest, the time summed over the timing
 * M's, the budget monotonicity property on random tables, and clear exceptions for bad options.
 */
class AbqWidthPolicyTest {
    private static final AbqWidth W8A8 = AbqWidth.parse("W8A8"), W4A8 = AbqWidth.parse("W4A8"), W4A4 = AbqWidth.parse("w4a4"),
            W2A8 = AbqWidth.parse("W2A8");

    /** Figures with one timing M; {@code e[i]} and {@code t[i]} (µs) belong to {@code widths[i]}. */
    static LayerWidthFigures layer(String name, List<AbqWidth> widths, double[] e, double[] t) {
        List<LayerWidthFigures.Candidate> c = new ArrayList<>();
        for (int i = 0; i < widths.size(); i++) c.add(new LayerWidthFigures.Candidate(widths.get(i), e[i], List.of(t[i] * 1e-6)));
        return new LayerWidthFigures(name, 64, 128, c);
    }

    /** Times proportional to the binary work (weight planes × activation bits), in µs. */
    static double[] work(List<AbqWidth> widths) {
        double[] t = new double[widths.size()];
        for (int i = 0; i < t.length; i++) t[i] = widths.get(i).binaryWork();
        return t;
    }

    @Test
    void picksTheFastestWidthWithinTheBudget() {
        List<AbqWidth> ws = List.of(W8A8, W4A8, W4A4, W2A8); // work 64, 32, 16, 16
        double[] t = work(ws);
        List<LayerWidthFigures> layers = List.of(
                layer("easy", ws, new double[] {1e-4, 5e-3, 8e-3, 0.2}, t),
                layer("activation-sensitive", ws, new double[] {1e-4, 6e-3, 0.3, 8e-3}, t),
                layer("tie", ws, new double[] {1e-4, 3e-3, 5e-3, 4e-3}, t),
                layer("weight-sensitive", ws, new double[] {1e-3, 0.05, 0.06, 0.5}, t),
                layer("hopeless", ws, new double[] {0.05, 0.2, 0.4, 0.9}, t),
                layer("noisy", ws, new double[] {1e-4, 0.02, 0.3, 5e-3}, t));
        AbqWidthReport r = new AbqWidthPolicy(ws, 0.01, List.of(1)).decide(layers);
        Map<String, AbqWidth> got = r.widths();
        assertEquals(W4A4, got.get("easy"));
        assertEquals(W2A8, got.get("activation-sensitive"));
        // W4A4 and W2A8 take the same time: the lower bounded error wins
        assertEquals(W2A8, got.get("tie"));
        assertEquals(W8A8, got.get("weight-sensitive"));
        // every candidate over budget: the widest, marked
        assertEquals(W8A8, got.get("hopeless"));
        assertTrue(r.decision("hopeless").overBudget());
        assertFalse(r.decision("easy").overBudget());
        // W2A8 measured 5e-3 but W4A8, which is wider, measured 0.02: W2A8 is bounded by 0.02 and out
        assertEquals(W8A8, got.get("noisy"));
        assertEquals(0.02, r.decision("noisy").budgetErrors()[3]);
        String table = r.toTable();
        assertTrue(table.contains("W8A8!") && table.contains("over budget at every candidate"), table);
        assertTrue(table.contains("[2.00e-02]"), table);
        // a loose budget puts every layer at the fastest width, ties to the lower bounded error
        AbqWidthReport loose = new AbqWidthPolicy(ws, Double.POSITIVE_INFINITY, List.of(1)).decide(layers);
        assertEquals(W4A4, loose.widths().get("easy"));
        assertEquals(W2A8, loose.widths().get("activation-sensitive")); // bounded 8e-3 vs 0.3
        assertEquals(16e-6 * layers.size(), loose.totalSeconds(), 1e-12);
    }

    @Test
    void timesAddUpOverTheTimingTokens() {
        List<AbqWidth> ws = List.of(W8A8, W4A8, W4A4);
        // M = 1: W4A8 fastest; M = 128: W4A4 much faster; the sum decides
        List<LayerWidthFigures.Candidate> c = List.of(
                new LayerWidthFigures.Candidate(W8A8, 1e-4, List.of(12e-6, 200e-6)),
                new LayerWidthFigures.Candidate(W4A8, 1e-3, List.of(10e-6, 100e-6)),
                new LayerWidthFigures.Candidate(W4A4, 2e-3, List.of(12e-6, 60e-6)));
        AbqWidthPolicy p = new AbqWidthPolicy(ws, 0.01, List.of(1, 128));
        assertEquals(W4A4, p.decide(List.of(new LayerWidthFigures("l", 8, 8, c))).widths().get("l"));
        // with only the decode M measured, W4A8 wins
        List<LayerWidthFigures.Candidate> decode = new ArrayList<>();
        for (LayerWidthFigures.Candidate x : c) decode.add(new LayerWidthFigures.Candidate(x.width(), x.relativeError(), x.seconds().subList(0, 1)));
        assertEquals(W4A8, new AbqWidthPolicy(ws, 0.01, List.of(1)).decide(List.of(new LayerWidthFigures("l", 8, 8, decode))).widths().get("l"));
        // one time per timing M is required
        assertThrows(IllegalArgumentException.class, () -> new AbqWidthPolicy(ws, 0.01, List.of(1)).decide(List.of(new LayerWidthFigures("l", 8, 8, c))));
    }

    /**
     * Random tables (errors shrink with width, with multiplicative noise that often inverts
     * neighbours; random times): lowering the budget never moves a layer to a width at most as wide
     * as before, never lowers its time and never raises its bounded error; on a chain of widths the
     * weight bits never go down.
     */
    @Test
    void aTighterBudgetNeverLowersALayersWidths() {
        Random rnd = new Random(42);
        List<AbqWidth> all = AbqWidth.parseList(AbqWidthPolicy.DEFAULT_CANDIDATES);
        List<AbqWidth> chain = AbqWidth.parseList(List.of("W2A8,W3A8,W4A8,W6A8,W8A8"));
        int inverted = 0;
        for (List<AbqWidth> ws : List.of(all, chain)) {
            for (int trial = 0; trial < 40; trial++) {
                List<LayerWidthFigures> layers = new ArrayList<>();
                for (int l = 0; l < 20; l++) {
                    double scale = Math.exp(rnd.nextGaussian() * 2);
                    double[] e = new double[ws.size()], t = new double[ws.size()];
                    for (int i = 0; i < ws.size(); i++) {
                        AbqWidth w = ws.get(i);
                        e[i] = scale * Math.pow(2, -w.weightBits()) * Math.pow(2, -w.activationBits()) * Math.exp(rnd.nextGaussian());
                        t[i] = w.binaryWork() * Math.exp(0.5 * rnd.nextGaussian());
                    }
                    for (int i = 0; i < ws.size(); i++) {
                        for (int j = 0; j < ws.size(); j++) {
                            if (i != j && ws.get(i).atMostAsWideAs(ws.get(j)) && e[i] < e[j]) inverted++;
                        }
                    }
                    layers.add(layer("l" + l, ws, e, t));
                }
                AbqWidthReport before = null;
                for (double budget = 1; budget > 1e-8; budget /= 1.7) {
                    AbqWidthReport now = new AbqWidthPolicy(ws, budget, List.of(1)).decide(layers);
                    if (before != null) {
                        for (int l = 0; l < layers.size(); l++) {
                            AbqWidthReport.Decision a = before.decisions().get(l), b = now.decisions().get(l);
                            String what = "budget " + budget + ", layer " + l + ": " + a.width() + " -> " + b.width();
                            assertTrue(a.width().equals(b.width()) || !b.width().atMostAsWideAs(a.width()), what);
                            assertTrue(b.choice().totalSeconds() >= a.choice().totalSeconds() || b.overBudget(), what);
                            if (!b.overBudget()) assertTrue(b.budgetErrors()[b.chosen()] <= a.budgetErrors()[a.chosen()], what);
                            assertTrue(!a.overBudget() || b.overBudget(), what);
                            if (ws == chain) assertTrue(b.width().weightBits() >= a.width().weightBits(), what);
                        }
                    }
                    before = now;
                }
            }
        }
        assertTrue(inverted > 100, "the tables must hold measured errors out of width order, else the property is trivial: " + inverted);
    }

    @Test
    void badOptionsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AbqWidth.parse("W9A8"));
        assertTrue(e.getMessage().contains("W9A8") && e.getMessage().contains("1..8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AbqWidth.parse("W0A8"));
        assertTrue(e.getMessage().contains("1..8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AbqWidth.parse("W4A9"));
        assertTrue(e.getMessage().contains("1..8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AbqWidth.parse("W3*A8"));
        assertTrue(e.getMessage().contains("bit balance"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AbqWidth.parse("INT4"));
        assertTrue(e.getMessage().contains("unknown ABQ width 'INT4'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AbqWidth.parse("W4A"));
        assertThrows(IllegalArgumentException.class, () -> AbqWidth.parse("W99999999999A8"));
        e = assertThrows(IllegalArgumentException.class, () -> AbqWidth.parseList(List.of("W4A8,w4a8")));
        assertTrue(e.getMessage().contains("twice"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AbqWidth.parseList(List.of("W4A8,,W8A8")));
        assertThrows(IllegalArgumentException.class, () -> AbqWidth.parseList(List.of()));
        e = assertThrows(IllegalArgumentException.class, () -> AbqWidthPolicy.parse(List.of("W8A8"), -1, List.of(1)));
        assertTrue(e.getMessage().contains("budget"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AbqWidthPolicy.parse(List.of("W8A8"), Double.NaN, List.of(1)));
        e = assertThrows(IllegalArgumentException.class, () -> AbqWidthPolicy.parse(List.of("W8A8"), 0.1, List.of(1, 0)));
        assertTrue(e.getMessage().contains("timing M"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AbqWidthPolicy.parse(List.of("W8A8"), 0.1, List.of()));
        // figures that do not match the policy's candidates
        List<AbqWidth> ws = List.of(W8A8, W4A8);
        AbqWidthPolicy p = new AbqWidthPolicy(List.of(W8A8, W4A4), 0.1, List.of(1));
        e = assertThrows(IllegalArgumentException.class, () -> p.decide(List.of(layer("x", ws, new double[] {0, 0}, new double[] {1, 1}))));
        assertTrue(e.getMessage().contains("W4A4"), e.getMessage());
        AbqWidthPolicy q = new AbqWidthPolicy(ws, 0.1, List.of(1));
        LayerWidthFigures x = layer("x", ws, new double[] {0, 0}, new double[] {1, 1});
        assertThrows(IllegalArgumentException.class, () -> q.decide(List.of(x, x)));
        assertThrows(IllegalArgumentException.class, () -> layer("x", ws, new double[] {Double.NaN, 0}, new double[] {1, 1}));
        assertThrows(IllegalArgumentException.class, () -> layer("x", List.of(W8A8, W8A8), new double[] {0, 0}, new double[] {1, 1}));
    }

    @Test
    void widthsParseAndOrder() {
        AbqWidth b = AbqWidth.parse(" w2*a8 ");
        assertTrue(b.bitBalance());
        assertEquals("W2*A8", b.toString());
        assertEquals(3, b.weightPlanes());
        assertEquals(5, b.weightLevels());
        assertEquals(b, AbqWidth.parse(b.toString()));
        assertTrue(W2A8.atMostAsWideAs(b) && b.atMostAsWideAs(AbqWidth.parse("W3A8")));
        assertFalse(W4A8.atMostAsWideAs(AbqWidth.parse("W6A6")) || AbqWidth.parse("W6A6").atMostAsWideAs(W4A8));
        // the total order extends the partial one
        List<AbqWidth> all = AbqWidth.parseList(List.of("W1A8,W1*A8,W2A8,W2*A8,W3A8,W4A4,W4A8,W6A6,W8A8,W8A4,W3A3"));
        for (AbqWidth x : all) {
            for (AbqWidth y : all) {
                if (!x.equals(y) && x.atMostAsWideAs(y)) assertTrue(AbqWidth.WIDER_LAST.compare(x, y) < 0, x + " vs " + y);
            }
        }
        assertEquals(W8A8, AbqWidthPolicy.defaults().widest());
        assertEquals(AbqWidth.parse("W6A6"), new AbqWidthPolicy(List.of(W4A8, AbqWidth.parse("W6A6")), 0.1, List.of(1)).widest());
        // the widths run the quantizers of the fixed-width ABQ RTN methods
        assertEquals(b.config().weightQuantizer().toString(), b.weightQuantizer().toString());
        assertEquals(b.config().activationQuantizer().toString(), b.activationQuantizer().toString());
    }
}
