// dgq_expand_avx512.cpp -- DGQ weight expansion with AVX-512 BW/VL.
//
// 32 codes per step: masked byte load (nothing read past the group), sign-
// extend to int16, for unsigned codes u = q & 15 and u - z, vpmullw by S2 (the
// low 8 bits of the low 16 bits are those of the exact product), vpmovwb
// (truncating word -> byte), masked store. Same bytes as the scalar reference.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "cpu/dgq_kernels.h"

namespace lowbit {
namespace cpu {

namespace {

void expand_avx512(int8_t* row, int64_t k, int64_t group, const uint8_t* s2, const int8_t* z) {
    const __m512i fifteen = _mm512_set1_epi16(15);
    for (int64_t g = 0, c0 = 0; c0 < k; ++g, c0 += group) {
        const __m512i s = _mm512_set1_epi16(static_cast<short>(s2[g]));
        const __m512i zv = _mm512_set1_epi16(static_cast<short>(z ? z[g] : 0));
        int8_t* p = row + c0;
        for (int64_t c = 0; c < group; c += 32) {
            const __mmask32 mask =
                group - c >= 32 ? ~__mmask32(0) : static_cast<__mmask32>(_bzhi_u32(~0u, static_cast<unsigned>(group - c)));
            __m512i w = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, p + c));
            if (z) w = _mm512_sub_epi16(_mm512_and_si512(w, fifteen), zv);
            w = _mm512_mullo_epi16(w, s);
            _mm256_mask_storeu_epi8(p + c, mask, _mm512_cvtepi16_epi8(w));
        }
    }
}

}  // namespace

DgqExpandFn dgq_expand_avx512() { return expand_avx512; }

}  // namespace cpu
}  // namespace lowbit
