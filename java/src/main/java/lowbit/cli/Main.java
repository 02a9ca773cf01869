package lowbit.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code lowbit} command line. */
@Command(
        name = "lowbit",
        mixinStandardHelpOptions = true,
        version = "lowbit 0.1.0",
        description = "Low-bit (INT4/INT8) LLM inference for the JVM.",
        subcommands = {DemoCommand.class, InfoCommand.class})
public final class Main implements Runnable {
    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Main()).execute(args));
    }
}
