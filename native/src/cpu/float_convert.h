// float_convert.h -- bit-exact F16 / BF16 <-> F32 conversions in portable C++.
//
// Written branch-free (selects instead of branches) so that the compiler can
// vectorize the loops that call them. Every function gives the same bits on
// every machine: they use only integer operations and, for F16 subnormals,
// one float addition/subtraction that is exact or rounds to nearest even
// (the IEEE default mode; the library never changes MXCSR).
//
// Everything here has internal linkage (anonymous namespace): this header may
// be included by sources compiled for different instruction sets, and inline
// functions with external linkage would let the linker pick, say, an AVX-512
// copy for the baseline code path.
#pragma once

#include <cstdint>
#include <cstring>

namespace lowbit {
namespace cpu {
namespace {

inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

inline float f32_from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// F16 -> F32 (exact; NaN payloads are kept, the quiet bit as given).
inline float f16_to_f32(uint16_t h) {
    const uint32_t shifted_exp = 0x7C00u << 13;
    uint32_t o = (static_cast<uint32_t>(h) & 0x7FFFu) << 13;  // exponent and mantissa
    const uint32_t exp = o & shifted_exp;
    o += (127 - 15) << 23;                                     // rebias the exponent
    const uint32_t inf_nan = o + ((128 - 16) << 23);           // Inf/NaN: exponent all ones
    // Zero / subnormal: renormalize with one exact float subtraction.
    const float sub = f32_from_bits(o + (1u << 23)) - f32_from_bits(113u << 23);
    o = exp == shifted_exp ? inf_nan : (exp == 0 ? f32_bits(sub) : o);
    return f32_from_bits(o | ((static_cast<uint32_t>(h) & 0x8000u) << 16));
}

// BF16 -> F32 (exact).
inline float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

// F32 -> F16, round to nearest even. Values whose rounding exceeds 65504
// become +-Inf; NaN becomes the quiet NaN 0x7E00 with the sign kept.
inline uint16_t f32_to_f16(float f) {
    const uint32_t u = f32_bits(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7FFFFFFFu;
    // Normal F16 range: rebias and round the 13 dropped mantissa bits.
    const uint32_t normal = (a + ((15u - 127u) << 23) + 0xFFFu + ((a >> 13) & 1u)) >> 13;
    // Subnormal F16 (|f| < 2^-14): adding 0.5 aligns the mantissa so the FPU
    // rounds it to nearest even; the low bits are then the F16 subnormal.
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    const uint32_t subnormal = f32_bits(f32_from_bits(a) + f32_from_bits(denorm_magic)) - denorm_magic;
    const uint32_t special = a > 0x7F800000u ? 0x7E00u : 0x7C00u;  // NaN : Inf
    uint32_t h = a >= ((127u + 16u) << 23) ? special : (a < (113u << 23) ? subnormal : normal);
    return static_cast<uint16_t>(h | sign);
}

// F32 -> BF16, round to nearest even (overflow rounds to Inf); NaN stays NaN
// (quiet bit set, sign and upper payload kept).
inline uint16_t f32_to_bf16(float f) {
    const uint32_t u = f32_bits(f);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x0040u;
    return static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

}  // namespace
}  // namespace cpu
}  // namespace lowbit
