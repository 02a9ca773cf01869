// dgq_kernels.h -- DGQ (A8W4, integer group scales) on the CPU: the per-ISA
// weight expansion and the GEMM driver that runs it (gemm_dgq.cpp).
//
// The driver unpacks a block of weight rows with the ISA's unpack_s4 (each
// nibble sign-extended to int8, as for S4 operands) and then expands each row
// in place, group by group, to the INT8 weight of lowbit_gemm_dgq:
//
//     signed codes (no zero points):  W8 = q * S2,        q = the int8 as read
//     unsigned codes:                 W8 = (u - z) * S2,  u = q & 15 (0..15)
//
// stored as the low 8 bits of the integer result (two's complement), so every
// ISA gives the same bytes even for weights that violate |W8| <= 127. The
// existing S8 x S8 micro-kernels (gemm_kernels.h) then multiply A by it.
//
// Expanders follow gemm_kernels.h's rule: intrinsics and plain C only in the
// ISA-specific sources.
#pragma once

#include <cstdint>

#include "backend.h"

namespace lowbit {
namespace cpu {

// Expands one row of k unpacked codes in place; group divides k; s2 and z
// (null: signed codes) hold the row's k / group group parameters.
using DgqExpandFn = void (*)(int8_t* row, int64_t k, int64_t group, const uint8_t* s2, const int8_t* z);

// Expands len codes of one group: the portable reference, and the tail of the
// SIMD versions. asym != 0: unsigned codes with zero point z.
void dgq_expand_span_scalar(int8_t* p, int64_t len, int s2, int z, int asym);

DgqExpandFn dgq_expand_scalar();  // dgq_expand_scalar.cpp
DgqExpandFn dgq_expand_avx2();    // dgq_expand_avx2.cpp: 16 codes per step, int16 multiply
DgqExpandFn dgq_expand_avx512();  // dgq_expand_avx512.cpp: 32 codes per step, masked tails

// Small-M kernel (dgq_gemv_avx512.cpp, AVX-512 VNNI; m = 1..4, group a
// multiple of 8): c[i * ldc + j] = sum_g S2[j][g] * sum_{c in g} a[i][c] * u[j][c]
// modulo 2^32, with u the unsigned code (nibble, or nibble ^ 8 when
// signed_codes). a: m rows in gemv_s4_order (lda a multiple of 64, >= k
// rounded up to 128); w: n packed rows, ldw bytes apart; lane_group: per
// 128-element chunk ch, 16 int32: (128 ch + 8 l) / group - (128 ch) / group.
// The driver subtracts the zero-point terms.
void dgq_gemv_avx512(const int8_t* a, int64_t lda, int m, const uint8_t* w, int64_t ldw, int64_t k, int64_t n,
                     const uint8_t* s2, int64_t groups, int64_t group, bool signed_codes, const int32_t* lane_group,
                     int32_t* c, int64_t ldc);

// lowbit_gemm_dgq on the CPU (arguments validated by api.cpp).
void gemm_dgq(const DgqGemmArgs& args, int isa, int threads);

}  // namespace cpu
}  // namespace lowbit
