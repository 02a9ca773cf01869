// kron_half_mma.cuh -- the F16 tensor-core and shared-memory primitives of the LOWBIT_KRON_HALF
// kernels (kron_quantize_half.cu: the first kernel, LOWBIT_KRON_HALF_IMPL=v1; kron_half_groups.cu:
// the default): exact powers of two for the range guard, ldmatrix, mma.sync m16n8k16 with float32
// accumulation (cp.async: cp_async.cuh), named barriers for groups of warps, and S4 nibble packing.
#pragma once

#include <cuda_fp16.h>

#include "cp_async.cuh"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {

// 2^k as a float, k in [-126, 127].
__device__ __forceinline__ float pow2(int k) { return __int_as_float((127 + k) << 23); }

// The exponent s with m * 2^-s in [2^(top-1), 2^top) (m finite and > 0), clamped to [-126, 126]
// so that 2^-s is a normal float; 0 for m == 0 or a non-finite m.
__device__ __forceinline__ int range_exponent(float m, int top) {
    if (!(m > 0.0f) || !is_finite(m)) return 0;
    int e;
    (void)frexpf(m, &e);  // m = f * 2^e, f in [0.5, 1)
    return min(max(e - top, -126), 126);
}

__device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);  // lo in the low 16 bits
    return *reinterpret_cast<const unsigned*>(&h);
}

__device__ __forceinline__ void ldsm_x4(unsigned addr, unsigned (&r)[4]) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ldsm_x4_trans(unsigned addr, unsigned (&r)[4]) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// d += A (16 x 16, F16, row-major fragment) * B (16 x 8, F16, "col" fragment), float32.
__device__ __forceinline__ void mma_f16(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four codes (bytes of w, lowest first) as four nibbles of a 16-bit value, lowest first.
__device__ __forceinline__ unsigned nibbles4(unsigned w) {
    return (w & 0xFu) | ((w >> 4) & 0xF0u) | ((w >> 8) & 0xF00u) | ((w >> 12) & 0xF000u);
}

// Barrier `id` (1..15; 0 is __syncthreads') over `threads` threads (a multiple of 32): the warps
// of one group wait for each other only.
__device__ __forceinline__ void named_barrier(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// named_barrier that also returns whether `p` held for any of the `threads` threads (bar.red.or:
// the same memory ordering as bar.sync).
__device__ __forceinline__ bool named_barrier_or(int id, int threads, bool p) {
    unsigned r;
    asm volatile(
        "{\n"
        "  .reg .pred pin, pout;\n"
        "  setp.ne.u32 pin, %1, 0;\n"
        "  bar.red.or.pred pout, %2, %3, pin;\n"
        "  selp.u32 %0, 1, 0, pout;\n"
        "}\n"
        : "=r"(r)
        : "r"(static_cast<unsigned>(p)), "r"(id), "r"(threads)
        : "memory");
    return r != 0;
}

}  // namespace cuda
}  // namespace lowbit
