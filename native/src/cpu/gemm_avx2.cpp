// gemm_avx2.cpp -- AVX2 micro-kernel: sign-extend int8 to int16, vpmaddwd.
//
// Per step of 16 K elements, each A row and each B row is loaded as 16 int8
// and sign-extended to 16 int16 (vpmovsxbw); _mm256_madd_epi16 multiplies and
// adds adjacent pairs into 8 int32 lanes. |a*b + a'*b'| <= 2 * 128 * 128 =
// 2^15, so vpmaddwd is exact (unlike vpmaddubsw, which saturates at int16).
// The tile is MR = 3 rows of A by NR = 3 rows of B: 9 accumulators + 3 B
// vectors + 1 A vector + 1 product fit the 16 ymm registers. K % 16 leftover
// elements are added in scalar code; the 8 lanes of every accumulator are
// summed at the end of the tile.
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr int kMR = 3;
constexpr int kNR = 3;

inline __m256i load16_s8_as_s16(const int8_t* p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Horizontal sum of the 8 int32 lanes (wrapping).
inline int32_t hsum8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

template <int MR, int NR>
void tile_avx2_fixed(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int32_t* c,
                     int64_t ldc) {
    __m256i acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_si256();

    int64_t kk = 0;
    for (; kk + 16 <= k; kk += 16) {
        __m256i bv[NR];
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) bv[j] = load16_s8_as_s16(b + j * ldb + kk);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
            const __m256i av = load16_s8_as_s16(a + i * lda + kk);
#pragma GCC unroll 4
            for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(av, bv[j]));
        }
    }
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) {
            uint32_t s = static_cast<uint32_t>(hsum8(acc[i][j]));
            for (int64_t t = kk; t < k; ++t)  // K tail, scalar
                s += static_cast<uint32_t>(static_cast<int32_t>(a[i * lda + t]) * b[j * ldb + t]);
            c[i * ldc + j] = static_cast<int32_t>(s);
        }
}

template <int MR>
void tile_avx2_rows(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int nr, int32_t* c,
                    int64_t ldc) {
    switch (nr) {
        case 1: tile_avx2_fixed<MR, 1>(a, lda, b, ldb, k, c, ldc); break;
        case 2: tile_avx2_fixed<MR, 2>(a, lda, b, ldb, k, c, ldc); break;
        default: tile_avx2_fixed<MR, 3>(a, lda, b, ldb, k, c, ldc); break;
    }
}

void tile_avx2(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int mr, int nr, int32_t* c,
               int64_t ldc) {
    switch (mr) {
        case 1: tile_avx2_rows<1>(a, lda, b, ldb, k, nr, c, ldc); break;
        case 2: tile_avx2_rows<2>(a, lda, b, ldb, k, nr, c, ldc); break;
        default: tile_avx2_rows<3>(a, lda, b, ldb, k, nr, c, ldc); break;
    }
}

// 16 packed bytes -> 32 int8: zero-extend each byte to a word 0x00HL, then
// (w | w << 4) & 0x0F0F puts L in the low byte and H in the high byte, i.e.
// elements 2p and 2p+1 in natural order; (v ^ 8) - 8 sign-extends the nibble.
void unpack_s4_avx2(const uint8_t* src, int64_t k, int8_t* dst) {
    const __m256i lo4 = _mm256_set1_epi16(0x0F0F), eight = _mm256_set1_epi8(8);
    int64_t c = 0;
    for (; c + 32 <= k; c += 32) {
        const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + c / 2)));
        const __m256i v = _mm256_and_si256(_mm256_or_si256(w, _mm256_slli_epi16(w, 4)), lo4);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c),
                            _mm256_sub_epi8(_mm256_xor_si256(v, eight), eight));
    }
    unpack_s4_scalar(src + c / 2, k - c, dst + c);
}

}  // namespace

GemmKernel gemm_kernel_avx2() { return GemmKernel{"avx2", kMR, kNR, 0, tile_avx2, unpack_s4_avx2, nullptr, 0, 0}; }

}  // namespace cpu
}  // namespace lowbit
