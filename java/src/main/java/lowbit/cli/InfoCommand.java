package lowbit.cli;

import lowbit.Lowbit;
import picocli.CommandLine.Command;

/** {@code lowbit info}: what the native library was built with and what this machine offers. */
@Command(name = "info", description = "Show the native build, CPU ISA level and CUDA devices.")
final class InfoCommand implements Runnable {
    @Override
    public void run() {
        System.out.println("liblowbit " + Lowbit.version());
        System.out.println("build:        " + Lowbit.buildInfo());
        System.out.println("CPU ISA:      " + Lowbit.cpuIsaBest());
        System.out.println("CUDA devices: " + Lowbit.cudaDeviceCount());
    }
}
