package lowbit.presets;

import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.javacpp.annotation.Properties;
import org.bytedeco.javacpp.tools.Info;
import org.bytedeco.javacpp.tools.InfoMap;
import org.bytedeco.javacpp.tools.InfoMapper;

/**
 * JavaCPP presets for liblowbit: the parser reads {@code lowbit/lowbit.h} (the C ABI, the only
 * contract between Java and native code) and generates {@code lowbit.bridge.LowbitNative} with one
 * static method per C function, plus a Pointer class per opaque handle.
 *
 * <p>Nothing else belongs here: the hand-written, checked Java API lives in the {@code lowbit}
 * package of the library module.
 */
@Properties(
        target = "lowbit.bridge",
        global = "lowbit.bridge.LowbitNative",
        value = @Platform(include = "lowbit/lowbit.h", link = "lowbit"))
public class LowbitConfig implements InfoMapper {
    @Override
    public void map(InfoMap infoMap) {
        infoMap.put(new Info("LOWBIT_API").cppTypes().annotations());
        infoMap.put(new Info("LOWBIT_LOWBIT_H").skip());
    }
}
