// kron_quantize_avx512.cpp -- the fixed-order FMA matrix product of
// lowbit_kron_quantize with AVX-512F (see kron_quantize_matmul.h).
//
// Vectorized over output columns: a lane holds one output element and runs
// its own chain acc = fma(A[i][t], B[t][c], acc) for t = 0, 1, ... in order,
// so the result is bit-identical to the scalar loop (vfmadd rounds once, as
// std::fma). Register block: 2 output rows x 64 columns (8 accumulators);
// each step loads up to 4 vectors of B's row t (masked at the right edge,
// so nothing is read past a row) and broadcasts A[i][t] and A[i+1][t].
#include <immintrin.h>

#include <cstdint>

#include "cpu/kron_quantize_matmul.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr int kVecs = 4;  // 64 columns per block

inline __mmask16 lane_mask(int remaining) {
    return remaining >= 16 ? static_cast<__mmask16>(0xFFFF)
                           : (remaining <= 0 ? static_cast<__mmask16>(0)
                                             : static_cast<__mmask16>((1u << remaining) - 1u));
}

}  // namespace

void fma_matmul_avx512(const float* a, const float* b, float* out, int r, int l, int c) {
    for (int c0 = 0; c0 < c; c0 += 16 * kVecs) {
        __mmask16 m[kVecs];
        for (int v = 0; v < kVecs; ++v) m[v] = lane_mask(c - c0 - 16 * v);
        const int nv = (c - c0 + 15) / 16 < kVecs ? (c - c0 + 15) / 16 : kVecs;
        int i = 0;
        for (; i + 2 <= r; i += 2) {
            __m512 acc0[kVecs], acc1[kVecs];
            for (int v = 0; v < kVecs; ++v) acc0[v] = acc1[v] = _mm512_setzero_ps();
            const float* a0 = a + static_cast<int64_t>(i) * l;
            const float* a1 = a0 + l;
            for (int t = 0; t < l; ++t) {
                const float* brow = b + static_cast<int64_t>(t) * c + c0;
                const __m512 s0 = _mm512_set1_ps(a0[t]);
                const __m512 s1 = _mm512_set1_ps(a1[t]);
                for (int v = 0; v < kVecs; ++v) {
                    if (v < nv) {
                        const __m512 bv = _mm512_maskz_loadu_ps(m[v], brow + 16 * v);
                        acc0[v] = _mm512_fmadd_ps(s0, bv, acc0[v]);
                        acc1[v] = _mm512_fmadd_ps(s1, bv, acc1[v]);
                    }
                }
            }
            float* o0 = out + static_cast<int64_t>(i) * c + c0;
            for (int v = 0; v < nv; ++v) {
                _mm512_mask_storeu_ps(o0 + 16 * v, m[v], acc0[v]);
                _mm512_mask_storeu_ps(o0 + c + 16 * v, m[v], acc1[v]);
            }
        }
        if (i < r) {
            __m512 acc0[kVecs];
            for (int v = 0; v < kVecs; ++v) acc0[v] = _mm512_setzero_ps();
            const float* a0 = a + static_cast<int64_t>(i) * l;
            for (int t = 0; t < l; ++t) {
                const float* brow = b + static_cast<int64_t>(t) * c + c0;
                const __m512 s0 = _mm512_set1_ps(a0[t]);
                for (int v = 0; v < kVecs; ++v)
                    if (v < nv) acc0[v] = _mm512_fmadd_ps(s0, _mm512_maskz_loadu_ps(m[v], brow + 16 * v), acc0[v]);
            }
            float* o0 = out + static_cast<int64_t>(i) * c + c0;
            for (int v = 0; v < nv; ++v) _mm512_mask_storeu_ps(o0 + 16 * v, m[v], acc0[v]);
        }
    }
}

}  // namespace cpu
}  // namespace lowbit
