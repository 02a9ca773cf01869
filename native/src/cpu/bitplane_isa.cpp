// bitplane_isa.cpp -- the one CPU feature the bit-plane GEMM adds to isa.cpp's
// levels: AVX-512 VPOPCNTDQ. It is a separate check, not a new ISA level, so
// the meaning of LOWBIT_ISA_* is unchanged: a context at LOWBIT_ISA_AVX512_VNNI
// uses the VPOPCNTDQ kernel when this says yes (Ice Lake, Sapphire Rapids,
// Zen 4 ...) and the POPCNT kernel otherwise (Cascade Lake has VNNI but not
// VPOPCNTDQ); LOWBIT_CPU_ISA lowers it as it lowers every kernel.
//
// Usable = CPUID.(7,0):ECX[14] (AVX512_VPOPCNTDQ) + AVX512F + the OS saving
// opmask and ZMM state (XCR0 bits 1, 2, 5, 6, 7), as isa.cpp checks.
#include <cstdint>

#include "cpu/bitplane.h"
#include "lowbit/lowbit.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LOWBIT_BITPLANE_X86 1
#endif

namespace lowbit {
namespace cpu {

namespace {

#if defined(LOWBIT_BITPLANE_X86)
bool detect_vpopcntdq() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    const bool osxsave = (ecx >> 27) & 1;
    if (!osxsave) return false;
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    const uint64_t xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
    if ((xcr0 & 0xE6) != 0xE6) return false;
    if (__get_cpuid_max(0, nullptr) < 7) return false;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const bool avx512f = (ebx >> 16) & 1;
    const bool vpopcntdq = (ecx >> 14) & 1;
    return avx512f && vpopcntdq;
}
#else
bool detect_vpopcntdq() { return false; }
#endif

}  // namespace

bool cpu_has_avx512_vpopcntdq() {
    static const bool has = detect_vpopcntdq();
    return has;
}

BitplaneTileFn select_bitplane_tile(int isa) {
    if (isa >= LOWBIT_ISA_AVX512_VNNI && cpu_has_avx512_vpopcntdq()) return bitplane_tile_vpopcnt();
    if (isa >= LOWBIT_ISA_AVX2) return bitplane_tile_popcnt();
    return bitplane_tile_scalar();
}

}  // namespace cpu
}  // namespace lowbit
