package lowbit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * Shared fixture of the GPU tests: one CUDA context and one CPU context (the reference backend) per
 * test class. On a host without a CUDA device every test of the class is skipped, visibly, with the
 * reason.
 */
@Tag("gpu")
abstract class GpuTestBase {
    static Context gpu;
    static Context cpu;

    @BeforeAll
    static void openContexts() {
        int devices = Lowbit.cudaDeviceCount();
        Assumptions.assumeTrue(devices > 0, "no CUDA device on this host (" + Lowbit.buildInfo() + "): GPU tests skipped");
        gpu = Context.open(Backend.CUDA);
        cpu = Context.open(Backend.CPU);
    }

    @AfterAll
    static void closeContexts() {
        if (gpu != null) {
            gpu.close();
            cpu.close();
            gpu = null;
            cpu = null;
        }
    }
}
