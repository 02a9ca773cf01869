package lowbit.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code lowbit} command line. */
@Command(
        name = "lowbit",
        mixinStandardHelpOptions = true,
        scope = CommandLine.ScopeType.INHERIT, // every subcommand gets --help and --version
        version = "lowbit 0.1.0",
        description = "Low-bit (INT4/INT8) LLM inference for the JVM.",
        subcommands = {DemoCommand.class, DemoLayerCommand.class, EvalCommand.class, QuantizeCommand.class,
                GenerateCommand.class, InfoCommand.class, BenchCpuCommand.class})
public final class Main implements Runnable {
    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    public static void main(String[] args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler((e, line, parsed) -> {
            // Users get the message; LOWBIT_DEBUG=1 shows the stack trace.
            if (System.getenv("LOWBIT_DEBUG") != null) {
                e.printStackTrace();
            }
            line.getErr().println("lowbit: " + e.getMessage());
            return 1;
        });
        System.exit(cli.execute(args));
    }
}
