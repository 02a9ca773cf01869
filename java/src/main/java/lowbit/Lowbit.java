package lowbit;

import lowbit.bridge.LowbitNative;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;

/**
 * Entry point: facts about the native library and this machine. Computation goes through a {@link
 * Context}.
 */
public final class Lowbit {
    private Lowbit() {}

    private static final class Native {
        static final Throwable LOAD_ERROR = load();

        private static Throwable load() {
            try {
                Loader.load(LowbitNative.class);
                return null;
            } catch (Throwable t) {
                return t;
            }
        }
    }

    /** Loads liblowbit once; a failure becomes a {@link LowbitException} naming the platform. */
    static void ensureLoaded() {
        Throwable t = Native.LOAD_ERROR;
        if (t != null) {
            throw new LowbitException(
                    LowbitException.Status.INTERNAL,
                    "liblowbit could not be loaded for platform " + Loader.getPlatform() + ": " + t,
                    t);
        }
    }

    /** Throws the exception for a failed native call; {@code status == 0} returns normally. */
    static void check(int status) {
        if (status != 0) {
            BytePointer message = LowbitNative.lowbit_last_error();
            String text = message == null ? "" : message.getString();
            throw LowbitException.of(status, text.isEmpty() ? "native call failed with status " + status : text);
        }
    }

    /** Version of the native library, e.g. {@code "0.1.0"}. */
    public static String version() {
        ensureLoaded();
        return LowbitNative.lowbit_version().getString();
    }

    /** One line on the native build: compiler, best CPU ISA, CUDA runtime and architectures. */
    public static String buildInfo() {
        ensureLoaded();
        return LowbitNative.lowbit_build_info().getString();
    }

    /** Usable CUDA devices; 0 without a CUDA build, driver or device. */
    public static int cudaDeviceCount() {
        ensureLoaded();
        int[] count = new int[1];
        check(LowbitNative.lowbit_cuda_device_count(count));
        return count[0];
    }

    /**
     * Names of the tuned GEMM kernel configurations compiled into liblowbit (CUTLASS SM90 W8A8
     * kernels: {@code pp} pingpong, {@code coop} cooperative, {@code sk} stream-K, then tile M×N×K
     * and cluster M×N), in the order of their native indices; empty without an sm_90a build.
     */
    public static java.util.List<String> gemmConfigs() {
        ensureLoaded();
        int count = LowbitNative.lowbit_gemm_config_count();
        java.util.List<String> names = new java.util.ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            names.add(LowbitNative.lowbit_gemm_config_name(i).getString());
        }
        return java.util.Collections.unmodifiableList(names);
    }

    /** The best integer-kernel ISA this CPU supports. */
    public static CpuIsa cpuIsaBest() {
        ensureLoaded();
        return CpuIsa.of(LowbitNative.lowbit_cpu_isa_best());
    }
}
