// dgq_expand_avx2.cpp -- DGQ weight expansion with AVX2.
//
// 16 codes per step: sign-extend to int16 (vpmovsxbw), for unsigned codes
// u = q & 15 and u - z, multiply by S2 (vpmullw keeps the low 16 bits, whose
// low 8 bits are those of the exact product), then keep the low byte of each
// word (and 0x00FF, vpackuswb, vpermq) -- the same bytes as the scalar
// reference. A group's last len % 16 codes go through the scalar code.
#include <immintrin.h>

#include "cpu/dgq_kernels.h"

namespace lowbit {
namespace cpu {

namespace {

void expand_avx2(int8_t* row, int64_t k, int64_t group, const uint8_t* s2, const int8_t* z) {
    const __m256i low_byte = _mm256_set1_epi16(0x00FF), fifteen = _mm256_set1_epi16(15);
    for (int64_t g = 0, c0 = 0; c0 < k; ++g, c0 += group) {
        const __m256i s = _mm256_set1_epi16(static_cast<short>(s2[g]));
        const __m256i zv = _mm256_set1_epi16(static_cast<short>(z ? z[g] : 0));
        int8_t* p = row + c0;
        int64_t c = 0;
        for (; c + 16 <= group; c += 16) {
            __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + c)));
            if (z) w = _mm256_sub_epi16(_mm256_and_si256(w, fifteen), zv);
            w = _mm256_and_si256(_mm256_mullo_epi16(w, s), low_byte);
            const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0xD8);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(p + c), _mm256_castsi256_si128(packed));
        }
        dgq_expand_span_scalar(p + c, group - c, s2[g], z ? z[g] : 0, z != nullptr);
    }
}

}  // namespace

DgqExpandFn dgq_expand_avx2() { return expand_avx2; }

}  // namespace cpu
}  // namespace lowbit
