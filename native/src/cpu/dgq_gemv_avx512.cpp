// dgq_gemv_avx512.cpp -- DGQ A8W4 for small M (decode) with AVX-512 VNNI:
// the 4-bit codes are multiplied as they are, the integer group scales are
// applied to per-lane partial sums, and the zero points enter through group
// sums of the activations -- no INT8 weight is ever materialised.
//
// For output (i, j), with u the unsigned code of a weight (the nibble for
// asymmetric weights, nibble ^ 8 = q + 8 for signed ones) and z its group's
// zero point (8 for signed codes):
//
//     acc[i][j] = sum_c a[i][c] * (u[j][c] - z[j][g]) * S2[j][g]
//               = sum_g S2[j][g] * (sum_{c in g} a[i][c] * u[j][c])     <- this kernel
//               - sum_g S2[j][g] * z[j][g] * A[i][g]                    <- the driver
//
// with A[i][g] the sum of row i's activations over group g. vpdpbusd
// multiplies u (unsigned bytes 0..15) by a (signed bytes) exactly. Every sum
// is taken modulo 2^32 (vpmulld / vpaddd wrap): the intermediate terms can
// exceed int32 for large K, but the difference is the exact int32 result of
// lowbit_gemm_dgq whenever that fits (weights that pass lowbit_dgq_check).
//
// Layout: a 128-element chunk of a weight row is 64 packed bytes; the low
// nibbles are its even elements, the high nibbles its odd ones, and A is
// pre-ordered to match (gemv_s4_order in gemm.cpp). 32-bit lane l of the
// vpdpbusd result then sums elements 8l .. 8l+7 of the chunk, which lie in one
// group when G is a multiple of 8; a vpermd of the row's group scales puts
// each lane's S2 beside it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "cpu/dgq_kernels.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr uintptr_t kPrefetchBytes = 8192;  // as the S4 gemv (gemm_avx512.cpp)

// NR weight rows at a time (4 independent load streams, as the S4 gemv of
// gemm_avx512.cpp), each against the M activation rows.
template <int M, int NR>
void gemv_block(const int8_t* a, int64_t lda, const uint8_t* w, int64_t ldw, int64_t k, const uint8_t* s2,
                int64_t groups, int64_t group, bool signed_codes, const int32_t* lane_group, int32_t* c,
                int64_t ldc) {
    const int64_t kb = (k + 1) / 2;  // packed bytes per row
    const int64_t chunks = (k + 127) / 128;
    const __m512i lo4 = _mm512_set1_epi8(0x0F);
    const __m512i flip = _mm512_set1_epi8(signed_codes ? static_cast<char>(0x88) : 0);
    __m512i acc[M][NR];
    for (int i = 0; i < M; ++i)
        for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_si512();
    for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t kk = ch * 64;
        const __mmask64 mask = kb - kk >= 64 ? ~__mmask64(0) : _bzhi_u64(~0ULL, static_cast<unsigned>(kb - kk));
        // The chunk's groups start at g0; lane l belongs to group g0 + lane_group[16 ch + l].
        const int64_t g0 = ch * 128 / group;
        const int64_t left = groups - g0;
        const __mmask16 gmask = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
        const __m512i idx = _mm512_loadu_si512(lane_group + 16 * ch);
        __m512i lo[NR], hi[NR], s[NR];
        for (int r = 0; r < NR; ++r) {
            const uint8_t* row = w + r * ldw;
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(row + kk) + kPrefetchBytes), _MM_HINT_T0);
            const __m512i wb = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, row + kk), flip);
            lo[r] = _mm512_and_si512(wb, lo4);
            hi[r] = _mm512_and_si512(_mm512_srli_epi16(wb, 4), lo4);
            const __m512i gs = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(gmask, s2 + r * groups + g0));
            s[r] = _mm512_permutexvar_epi32(idx, gs);
        }
        for (int i = 0; i < M; ++i) {
            const __m512i ae = _mm512_load_si512(a + i * lda + 2 * kk);
            const __m512i ao = _mm512_load_si512(a + i * lda + 2 * kk + 64);
            for (int r = 0; r < NR; ++r) {
                const __m512i p = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[r], ae), hi[r], ao);
                acc[i][r] = _mm512_add_epi32(acc[i][r], _mm512_mullo_epi32(p, s[r]));
            }
        }
    }
    for (int i = 0; i < M; ++i)
        for (int r = 0; r < NR; ++r) c[i * ldc + r] = _mm512_reduce_add_epi32(acc[i][r]);
}

template <int M>
void gemv_rows(const int8_t* a, int64_t lda, const uint8_t* w, int64_t ldw, int64_t k, int64_t n,
               const uint8_t* s2, int64_t groups, int64_t group, bool signed_codes, const int32_t* lane_group,
               int32_t* c, int64_t ldc) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
        gemv_block<M, 4>(a, lda, w + j * ldw, ldw, k, s2 + j * groups, groups, group, signed_codes, lane_group, c + j, ldc);
    for (; j < n; ++j)
        gemv_block<M, 1>(a, lda, w + j * ldw, ldw, k, s2 + j * groups, groups, group, signed_codes, lane_group, c + j, ldc);
}

}  // namespace

void dgq_gemv_avx512(const int8_t* a, int64_t lda, int m, const uint8_t* w, int64_t ldw, int64_t k, int64_t n,
                     const uint8_t* s2, int64_t groups, int64_t group, bool signed_codes, const int32_t* lane_group,
                     int32_t* c, int64_t ldc) {
    switch (m) {
        case 1: gemv_rows<1>(a, lda, w, ldw, k, n, s2, groups, group, signed_codes, lane_group, c, ldc); break;
        case 2: gemv_rows<2>(a, lda, w, ldw, k, n, s2, groups, group, signed_codes, lane_group, c, ldc); break;
        case 3: gemv_rows<3>(a, lda, w, ldw, k, n, s2, groups, group, signed_codes, lane_group, c, ldc); break;
        default: gemv_rows<4>(a, lda, w, ldw, k, n, s2, groups, group, signed_codes, lane_group, c, ldc); break;
    }
}

}  // namespace cpu
}  // namespace lowbit
