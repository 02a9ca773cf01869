package lowbit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import lowbit.abq.AbqWidth;
import lowbit.abq.AbqWidthPolicy;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** {@code lowbit eval}'s abq-auto options become the width policy; bad ones are named before anything runs. */
class EvalAbqOptionsTest {
    private static EvalCommand parse(String... args) {
        EvalCommand c = new EvalCommand();
        new CommandLine(c).parseArgs(args);
        return c;
    }

    @Test
    void optionsMakeThePolicy() {
        AbqWidthPolicy d = parse("--methods", "abq-auto").abqWidthPolicy();
        assertEquals(AbqWidth.parseList(AbqWidthPolicy.DEFAULT_CANDIDATES), d.candidates());
        assertEquals(AbqWidthPolicy.DEFAULT_ERROR_BUDGET, d.errorBudget());
        assertEquals(List.of(1, 128), d.timingTokens());
        AbqWidthPolicy p = parse("--methods", "abq-auto", "--abq-candidates", "W8A8,w4a8,W2*A8", "--abq-error-budget", "0.05",
                "--abq-timing", "1,64").abqWidthPolicy();
        assertEquals(AbqWidth.parseList(List.of("W8A8", "W4A8", "W2*A8")), p.candidates());
        assertEquals(0.05, p.errorBudget());
        assertEquals(List.of(1, 64), p.timingTokens());
    }

    @Test
    void badOptionsAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> parse("--abq-candidates", "W8A8,W9A8").abqWidthPolicy());
        assertTrue(e.getMessage().contains("W9A8") && e.getMessage().contains("1..8"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> parse("--abq-candidates", "int4").abqWidthPolicy());
        assertTrue(e.getMessage().contains("unknown ABQ width 'int4'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> parse("--abq-timing-runs", "0").abqWidthPolicy());
        assertTrue(e.getMessage().contains("--abq-timing-runs"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> parse("--abq-error-budget", "-0.1").abqWidthPolicy());
        assertTrue(e.getMessage().contains("budget"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> parse("--abq-timing", "0").abqWidthPolicy());
        assertTrue(e.getMessage().contains("timing M"), e.getMessage());
    }

    /** {@code lowbit quantize} takes the same ABQ options (shared {@link AbqOptions}): budget, checkpoints, abq-auto's policy. */
    @Test
    void quantizeTakesTheSameAbqOptions() {
        QuantizeCommand q = new QuantizeCommand();
        new CommandLine(q).parseArgs("--method", "abq-auto", "-o", "m.safetensors", "--abq-budget", "4,64,1,2", "--abq-candidates", "W8A8,W2A8",
                "--abq-dir", "ckpt");
        assertEquals(new lowbit.pipeline.CalibrationBudget(4, 64, 1, 2), q.abq.budget());
        assertEquals(List.of(AbqWidth.parse("W8A8"), AbqWidth.parse("W2A8")), q.abq.widthPolicy().candidates());
        assertEquals(java.nio.file.Path.of("ckpt"), q.abq.dir);
        QuantizeCommand bad = new QuantizeCommand();
        new CommandLine(bad).parseArgs("--method", "abq-w2a8", "-o", "m.safetensors", "--abq-budget", "4,64");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, bad.abq::budget);
        assertTrue(e.getMessage().contains("--abq-budget takes four integers"), e.getMessage());
    }
}
