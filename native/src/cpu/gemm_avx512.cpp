// gemm_avx512.cpp -- AVX-512 VNNI micro-kernel (vpdpbusd).
//
// _mm512_dpbusd_epi32(acc, u, s) adds, to each of 16 int32 lanes, the sum of
// four products u8 x s8. Our operands are both signed, so B is shifted into
// the unsigned range: B' = B + 128 = B XOR 0x80 (any int8, -128 included, maps
// to 0..255). Then
//
//     sum_k A[i][k] * B'[j][k] = C[i][j] + 128 * sum_k A[i][k]
//
// and the driver subtracts 128 * rowsum(A[i]) (b_offset = 128) afterwards.
// vpdpbusd wraps (it is not the saturating vpdpbusds), so the raw sums may
// overflow int32 for huge K and the corrected result is still exact modulo
// 2^32, i.e. exact whenever the true result fits in int32.
//
// Register tile: MR = 6 rows of A x NR = 4 rows of B -> 24 zmm accumulators,
// 4 B vectors and 1 A vector (29 of 32 registers). Per 64-byte K step: 4 B
// loads + 4 XORs, 6 A loads, 24 vpdpbusd. Each accumulator holds 16 partial
// sums along K; they are reduced at the end of the tile, four accumulators at
// a time (unpack/add within 128-bit lanes, then across lanes), which yields
// the four outputs C[i][j..j+3] in one xmm. The K tail (K % 64) uses masked
// byte loads, which read nothing past the row end (masked-off lanes are zero:
// 0x80 ^ 0 pairs with an A lane of 0).
// GCC 12's avx512fintrin.h builds some intrinsics on _mm512_undefined_*(),
// which -Wuninitialized reports as "used uninitialized" (a GCC bug, fixed in
// GCC 13). Silence it for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "cpu/gemm_kernels.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr int kMR = 6;
constexpr int kNR = 4;

// Sums each of a, b, c, d over its 16 lanes: returns [sum a, sum b, sum c, sum d].
inline __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
    // Per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d.
    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    // Per 128-bit lane: [a, b, c, d] partial sums.
    const __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    // Add the four 128-bit lanes.
    const __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

// The 24 accumulators are named variables (cIJ = rows i of A x row j of B):
// GCC does not keep a 24-entry array of zmm values in registers (it exceeds
// its scalar-replacement size limit) and would spill them every step. Rows
// i >= MR and columns j >= NR are compile-time dead and vanish.
#define LOWBIT_VNNI_ROW(i)                                                              \
    if (MR > i) {                                                                       \
        const __m512i av = _mm512_maskz_loadu_epi8(mask, a + i * lda + kk);             \
        c##i##0 = _mm512_dpbusd_epi32(c##i##0, b0, av);                                 \
        if (NR > 1) c##i##1 = _mm512_dpbusd_epi32(c##i##1, b1, av);                     \
        if (NR > 2) c##i##2 = _mm512_dpbusd_epi32(c##i##2, b2, av);                     \
        if (NR > 3) c##i##3 = _mm512_dpbusd_epi32(c##i##3, b3, av);                     \
    }
#define LOWBIT_VNNI_STORE(i) \
    if (MR > i) _mm_mask_storeu_epi32(c + i * ldc, store_mask, reduce4(c##i##0, c##i##1, c##i##2, c##i##3));

template <int MR, int NR>
void tile_vnni_fixed(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int32_t* c,
                     int64_t ldc) {
    static_assert(MR >= 1 && MR <= kMR && NR >= 1 && NR <= kNR, "tile shape");
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    __m512i c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z;

    // One 64-byte K step per iteration: B' = B ^ 0x80 (u8) for NR rows, then
    // row by row A (s8) against all of them. The last step masks off bytes
    // past K (a masked load with an all-ones mask costs as much as a plain one).
    for (int64_t kk = 0; kk < k; kk += 64) {
        const __mmask64 mask = k - kk >= 64 ? ~__mmask64(0) : _bzhi_u64(~0ULL, static_cast<unsigned>(k - kk));
        const __m512i b0 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + kk), flip);
        const __m512i b1 = NR > 1 ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + ldb + kk), flip) : z;
        const __m512i b2 = NR > 2 ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + 2 * ldb + kk), flip) : z;
        const __m512i b3 = NR > 3 ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + 3 * ldb + kk), flip) : z;
        LOWBIT_VNNI_ROW(0)
        LOWBIT_VNNI_ROW(1)
        LOWBIT_VNNI_ROW(2)
        LOWBIT_VNNI_ROW(3)
        LOWBIT_VNNI_ROW(4)
        LOWBIT_VNNI_ROW(5)
    }

    // Unused columns are still zero, so reduce4 can take all four.
    const __mmask8 store_mask = static_cast<__mmask8>((1u << NR) - 1);
    LOWBIT_VNNI_STORE(0)
    LOWBIT_VNNI_STORE(1)
    LOWBIT_VNNI_STORE(2)
    LOWBIT_VNNI_STORE(3)
    LOWBIT_VNNI_STORE(4)
    LOWBIT_VNNI_STORE(5)
}

#undef LOWBIT_VNNI_ROW
#undef LOWBIT_VNNI_STORE

template <int MR>
void tile_vnni_rows(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int nr, int32_t* c,
                    int64_t ldc) {
    switch (nr) {
        case 1: tile_vnni_fixed<MR, 1>(a, lda, b, ldb, k, c, ldc); break;
        case 2: tile_vnni_fixed<MR, 2>(a, lda, b, ldb, k, c, ldc); break;
        case 3: tile_vnni_fixed<MR, 3>(a, lda, b, ldb, k, c, ldc); break;
        default: tile_vnni_fixed<MR, 4>(a, lda, b, ldb, k, c, ldc); break;
    }
}

void tile_vnni(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int mr, int nr, int32_t* c,
               int64_t ldc) {
    switch (mr) {
        case 1: tile_vnni_rows<1>(a, lda, b, ldb, k, nr, c, ldc); break;
        case 2: tile_vnni_rows<2>(a, lda, b, ldb, k, nr, c, ldc); break;
        case 3: tile_vnni_rows<3>(a, lda, b, ldb, k, nr, c, ldc); break;
        case 4: tile_vnni_rows<4>(a, lda, b, ldb, k, nr, c, ldc); break;
        case 5: tile_vnni_rows<5>(a, lda, b, ldb, k, nr, c, ldc); break;
        default: tile_vnni_rows<6>(a, lda, b, ldb, k, nr, c, ldc); break;
    }
}

// ---- small-M (decode) kernel ------------------------------------------------
//
// m = 1..4 rows of A against the weight rows, NR = 4 weight rows per step, so
// that every weight byte is loaded exactly once and 4 streams run ahead of
// the hardware prefetcher; up to 16 accumulators (named, as above). S8 B: per
// 64-byte K step, 4 B loads + XOR 0x80, m A loads, 4m vpdpbusd; the K tail is
// a masked load (nothing read past a row). S4 B: per 64 packed bytes (128
// elements), 4 B loads, XOR 0x88 (both nibbles: v + 8 in 0..15, unsigned),
// low nibbles = & 0x0F, high nibbles = (>> 4) & 0x0F, then vpdpbusd against
// the even and the odd elements of A, which the driver laid out in that order
// (no unpacked copy of B is ever written). Masked-off B bytes read as 0 ->
// nibble 8, paired with the zero padding of A.
#define LOWBIT_GEMV_ROW_S8(i)                                                          \
    if (M > i) {                                                                       \
        const __m512i av = _mm512_maskz_loadu_epi8(mask, a + i * lda + kk);            \
        c##i##0 = _mm512_dpbusd_epi32(c##i##0, b0, av);                                \
        if (NR > 1) c##i##1 = _mm512_dpbusd_epi32(c##i##1, b1, av);                    \
        if (NR > 2) c##i##2 = _mm512_dpbusd_epi32(c##i##2, b2, av);                    \
        if (NR > 3) c##i##3 = _mm512_dpbusd_epi32(c##i##3, b3, av);                    \
    }
#define LOWBIT_GEMV_ROW_S4(i)                                                          \
    if (M > i) {                                                                       \
        const __m512i ae = _mm512_load_si512(a + i * lda + 2 * kk);                    \
        const __m512i ao = _mm512_load_si512(a + i * lda + 2 * kk + 64);               \
        c##i##0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c##i##0, l0, ae), h0, ao);   \
        if (NR > 1) c##i##1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c##i##1, l1, ae), h1, ao); \
        if (NR > 2) c##i##2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c##i##2, l2, ae), h2, ao); \
        if (NR > 3) c##i##3 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c##i##3, l3, ae), h3, ao); \
    }
#define LOWBIT_GEMV_S4_SPLIT(j)                                                        \
    const __m512i w##j = NR > j ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + j * ldb + kk), flip) : z; \
    const __m512i l##j = _mm512_and_si512(w##j, lo4);                                  \
    const __m512i h##j = _mm512_and_si512(_mm512_srli_epi16(w##j, 4), lo4);
// Software prefetch kGemvPrefetchBytes ahead in each of the NR weight rows:
// one 64-byte line per row per step, as many as the step consumes. Weight
// rows are contiguous in a GEMV, so this runs ahead along the whole B stream;
// the hardware prefetchers alone ramp up too slowly on the short (0.3-1.5 KB)
// rows of small decode layers. A prefetch never faults, so no bounds check;
// the address is formed in integer arithmetic.
constexpr uintptr_t kGemvPrefetchBytes = 8192;
#define LOWBIT_GEMV_PREFETCH                                                                        \
    {                                                                                               \
        const uintptr_t p = reinterpret_cast<uintptr_t>(b) + static_cast<uintptr_t>(kk) + kGemvPrefetchBytes; \
        _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);                                \
        if (NR > 1) _mm_prefetch(reinterpret_cast<const char*>(p + static_cast<uintptr_t>(ldb)), _MM_HINT_T0);     \
        if (NR > 2) _mm_prefetch(reinterpret_cast<const char*>(p + 2 * static_cast<uintptr_t>(ldb)), _MM_HINT_T0); \
        if (NR > 3) _mm_prefetch(reinterpret_cast<const char*>(p + 3 * static_cast<uintptr_t>(ldb)), _MM_HINT_T0); \
    }
#define LOWBIT_GEMV_STORE(i) \
    if (M > i) _mm_mask_storeu_epi32(c + i * ldc, store_mask, reduce4(c##i##0, c##i##1, c##i##2, c##i##3));

template <int M, int NR, bool S4>
void gemv_vnni_fixed(const int8_t* a, int64_t lda, const uint8_t* b, int64_t ldb, int64_t k, int32_t* c,
                     int64_t ldc) {
    static_assert(M >= 1 && M <= 4 && NR >= 1 && NR <= 4, "gemv shape");
    const __m512i z = _mm512_setzero_si512();
    __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    if (!S4) {
        const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
        for (int64_t kk = 0; kk < k; kk += 64) {
            const __mmask64 mask = k - kk >= 64 ? ~__mmask64(0) : _bzhi_u64(~0ULL, static_cast<unsigned>(k - kk));
            LOWBIT_GEMV_PREFETCH
            const __m512i b0 = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + kk), flip);
            const __m512i b1 = NR > 1 ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + ldb + kk), flip) : z;
            const __m512i b2 = NR > 2 ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + 2 * ldb + kk), flip) : z;
            const __m512i b3 = NR > 3 ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, b + 3 * ldb + kk), flip) : z;
            LOWBIT_GEMV_ROW_S8(0)
            LOWBIT_GEMV_ROW_S8(1)
            LOWBIT_GEMV_ROW_S8(2)
            LOWBIT_GEMV_ROW_S8(3)
        }
    } else {
        const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x88));
        const __m512i lo4 = _mm512_set1_epi8(0x0F);
        const int64_t kb = (k + 1) / 2;  // packed bytes per row
        for (int64_t kk = 0; kk < kb; kk += 64) {
            const __mmask64 mask = kb - kk >= 64 ? ~__mmask64(0) : _bzhi_u64(~0ULL, static_cast<unsigned>(kb - kk));
            LOWBIT_GEMV_PREFETCH
            LOWBIT_GEMV_S4_SPLIT(0)
            LOWBIT_GEMV_S4_SPLIT(1)
            LOWBIT_GEMV_S4_SPLIT(2)
            LOWBIT_GEMV_S4_SPLIT(3)
            LOWBIT_GEMV_ROW_S4(0)
            LOWBIT_GEMV_ROW_S4(1)
            LOWBIT_GEMV_ROW_S4(2)
            LOWBIT_GEMV_ROW_S4(3)
        }
    }
    const __mmask8 store_mask = static_cast<__mmask8>((1u << NR) - 1);
    LOWBIT_GEMV_STORE(0)
    LOWBIT_GEMV_STORE(1)
    LOWBIT_GEMV_STORE(2)
    LOWBIT_GEMV_STORE(3)
}

#undef LOWBIT_GEMV_ROW_S8
#undef LOWBIT_GEMV_ROW_S4
#undef LOWBIT_GEMV_S4_SPLIT
#undef LOWBIT_GEMV_STORE
#undef LOWBIT_GEMV_PREFETCH

template <int M, bool S4>
void gemv_vnni_m(const int8_t* a, int64_t lda, const uint8_t* b, int64_t ldb, int64_t k, int64_t n, int32_t* c,
                 int64_t ldc) {
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) gemv_vnni_fixed<M, 4, S4>(a, lda, b + j * ldb, ldb, k, c + j, ldc);
    switch (n - j) {
        case 1: gemv_vnni_fixed<M, 1, S4>(a, lda, b + j * ldb, ldb, k, c + j, ldc); break;
        case 2: gemv_vnni_fixed<M, 2, S4>(a, lda, b + j * ldb, ldb, k, c + j, ldc); break;
        case 3: gemv_vnni_fixed<M, 3, S4>(a, lda, b + j * ldb, ldb, k, c + j, ldc); break;
        default: break;
    }
}

template <bool S4>
void gemv_vnni_t(const int8_t* a, int64_t lda, int m, const uint8_t* b, int64_t ldb, int64_t k, int64_t n,
                 int32_t* c, int64_t ldc) {
    switch (m) {
        case 1: gemv_vnni_m<1, S4>(a, lda, b, ldb, k, n, c, ldc); break;
        case 2: gemv_vnni_m<2, S4>(a, lda, b, ldb, k, n, c, ldc); break;
        case 3: gemv_vnni_m<3, S4>(a, lda, b, ldb, k, n, c, ldc); break;
        default: gemv_vnni_m<4, S4>(a, lda, b, ldb, k, n, c, ldc); break;
    }
}

void gemv_vnni(const int8_t* a, int64_t lda, int m, const uint8_t* b, int64_t ldb, bool b_s4, int64_t k, int64_t n,
               int32_t* c, int64_t ldc) {
    if (b_s4) gemv_vnni_t<true>(a, lda, m, b, ldb, k, n, c, ldc);
    else gemv_vnni_t<false>(a, lda, m, b, ldb, k, n, c, ldc);
}

// 32 packed bytes -> 64 int8, as in gemm_avx2.cpp: zero-extend bytes to words
// 0x00HL, (w | w << 4) & 0x0F0F (one vpternlog) gives L, H in natural order,
// (v ^ 8) - 8 sign-extends.
void unpack_s4_avx512(const uint8_t* src, int64_t k, int8_t* dst) {
    const __m512i lo4 = _mm512_set1_epi16(0x0F0F), eight = _mm512_set1_epi8(8);
    int64_t c = 0;
    for (; c + 64 <= k; c += 64) {
        const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + c / 2)));
        // imm 0xA8 = (A | B) & C
        const __m512i v = _mm512_ternarylogic_epi32(w, _mm512_slli_epi16(w, 4), lo4, 0xA8);
        _mm512_storeu_si512(dst + c, _mm512_sub_epi8(_mm512_xor_si512(v, eight), eight));
    }
    unpack_s4_scalar(src + c / 2, k - c, dst + c);
}

}  // namespace

GemmKernel gemm_kernel_avx512() { return GemmKernel{"avx512vnni", kMR, kNR, 128, tile_vnni, unpack_s4_avx512, gemv_vnni, 128, 8}; }

}  // namespace cpu
}  // namespace lowbit
