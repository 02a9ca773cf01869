// isa.cpp -- which integer-kernel instruction set this CPU (and OS) can run.
//
// A feature is usable only when the CPU implements it AND the operating system
// saves the register state it needs on context switches (XCR0, read through
// XGETBV): YMM state for AVX2, opmask + ZMM state for AVX-512.
//
//   level                      needs
//   LOWBIT_ISA_AVX2            AVX, AVX2, BMI2, POPCNT     + OS YMM state
//   LOWBIT_ISA_AVX512_VNNI     the above + AVX512 F/BW/VL/DQ + AVX512_VNNI
//                                                          + OS opmask/ZMM state
//
// (BMI2 and POPCNT are included because the *_avx2.cpp / *_avx512.cpp sources
// are compiled with -mbmi2 -mpopcnt, see cmake/LowbitCompilerFlags.cmake.)
#include "cpu/isa.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "backend.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LOWBIT_X86 1
#endif

namespace lowbit {

namespace {

#if defined(LOWBIT_X86)
// XGETBV(0): the OS-enabled register-state components (XCR0).
uint64_t read_xcr0() {
    uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

int detect_isa() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return LOWBIT_ISA_SCALAR;
    const bool osxsave = (ecx >> 27) & 1;
    const bool avx = (ecx >> 28) & 1;
    const bool popcnt = (ecx >> 23) & 1;
    if (!osxsave || !avx || !popcnt) return LOWBIT_ISA_SCALAR;

    const uint64_t xcr0 = read_xcr0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
    if (!os_ymm) return LOWBIT_ISA_SCALAR;

    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (max_leaf < 7) return LOWBIT_ISA_SCALAR;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const bool avx2 = (ebx >> 5) & 1;
    const bool bmi2 = (ebx >> 8) & 1;
    const bool avx512f = (ebx >> 16) & 1;
    const bool avx512dq = (ebx >> 17) & 1;
    const bool avx512bw = (ebx >> 30) & 1;
    const bool avx512vl = (ebx >> 31) & 1;
    const bool avx512vnni = (ecx >> 11) & 1;
    if (!avx2 || !bmi2) return LOWBIT_ISA_SCALAR;
    if (os_zmm && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni) return LOWBIT_ISA_AVX512_VNNI;
    return LOWBIT_ISA_AVX2;
}
#else
int detect_isa() { return LOWBIT_ISA_SCALAR; }
#endif

}  // namespace

int cpu_isa_best() {
    static const int best = detect_isa();  // thread-safe one-time initialization
    return best;
}

namespace cpu {

int cpu_isa_default() {
    int level = cpu_isa_best();
    if (const char* env = std::getenv("LOWBIT_CPU_ISA")) {
        int wanted = level;
        if (std::strcmp(env, "scalar") == 0) wanted = LOWBIT_ISA_SCALAR;
        else if (std::strcmp(env, "avx2") == 0) wanted = LOWBIT_ISA_AVX2;
        else if (std::strcmp(env, "avx512vnni") == 0) wanted = LOWBIT_ISA_AVX512_VNNI;
        // Unknown values are ignored; the variable can only lower the level.
        if (wanted < level) level = wanted;
    }
    return level;
}

}  // namespace cpu
}  // namespace lowbit
