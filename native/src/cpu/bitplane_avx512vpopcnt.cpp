// bitplane_avx512vpopcnt.cpp -- the plane-pair kernel with AVX-512 VPOPCNTDQ
// (_mm512_popcnt_epi64): 512 columns of one plane pair per instruction.
// Compiled with -mavx512f ... -mavx512vpopcntdq (the *_avx512vpopcnt.cpp rule
// of cmake/LowbitCompilerFlags.cmake) and only called when
// cpu_has_avx512_vpopcntdq() says so.
//
// Per plane pair (a, b), a 2 x 4 tile keeps 8 vector counters (64-bit lanes,
// each <= 64 per chunk: no overflow) over the kw words, 8 words per step and
// a masked load for the tail; the counters are then shifted by a + b (the
// plane weights are +-2^a, +-2^b), added to or subtracted from 8 vector
// totals, and each total is reduced once at the end of the tile.
#include <immintrin.h>

#include "cpu/bitplane.h"

namespace lowbit {
namespace cpu {

namespace {

// The 8 lanes' sum (a store and scalar adds: GCC 12's _mm512_reduce_add_epi64
// trips -Wuninitialized inside its own header).
int64_t sum_lanes(__m512i v) {
    alignas(64) int64_t lanes[8];
    _mm512_store_si512(lanes, v);
    int64_t s = 0;
    for (int l = 0; l < 8; ++l) s += lanes[l];
    return s;
}

template <int MR, int NR>
void tile_fixed(const PlaneOperand& x, const PlaneOperand& w, int64_t kw, int64_t* s, int64_t lds) {
    __m512i total[MR][NR];
    for (int r = 0; r < MR; ++r)
        for (int c = 0; c < NR; ++c) total[r][c] = _mm512_setzero_si512();
    const int64_t full = kw / 8 * 8;
    const __mmask8 tail = static_cast<__mmask8>((1u << (kw - full)) - 1u);
    for (int a = 0; a < x.planes; ++a) {
        const uint64_t* xr[MR];
        for (int r = 0; r < MR; ++r) xr[r] = x.rows + r * x.row_stride + a * x.ld;
        for (int b = 0; b < w.planes; ++b) {
            const uint64_t* wc[NR];
            for (int c = 0; c < NR; ++c) wc[c] = w.rows + c * w.row_stride + b * w.ld;
            __m512i cnt[MR][NR];
            for (int r = 0; r < MR; ++r)
                for (int c = 0; c < NR; ++c) cnt[r][c] = _mm512_setzero_si512();
            for (int64_t t = 0; t < full; t += 8) {
                __m512i wv[NR];
                for (int c = 0; c < NR; ++c) wv[c] = _mm512_loadu_si512(wc[c] + t);
                for (int r = 0; r < MR; ++r) {
                    const __m512i xv = _mm512_loadu_si512(xr[r] + t);
                    for (int c = 0; c < NR; ++c)
                        cnt[r][c] = _mm512_add_epi64(cnt[r][c], _mm512_popcnt_epi64(_mm512_and_si512(xv, wv[c])));
                }
            }
            if (tail != 0) {
                __m512i wv[NR];
                for (int c = 0; c < NR; ++c) wv[c] = _mm512_maskz_loadu_epi64(tail, wc[c] + full);
                for (int r = 0; r < MR; ++r) {
                    const __m512i xv = _mm512_maskz_loadu_epi64(tail, xr[r] + full);
                    for (int c = 0; c < NR; ++c)
                        cnt[r][c] = _mm512_add_epi64(cnt[r][c], _mm512_popcnt_epi64(_mm512_and_si512(xv, wv[c])));
                }
            }
            // weight = +-2^(a+b): a shift, then an add or a subtract.
            const int64_t weight = x.weight[a] * w.weight[b];
            const unsigned shift = static_cast<unsigned>(a + b);
            const __m128i count = _mm_cvtsi32_si128(static_cast<int>(shift));
            for (int r = 0; r < MR; ++r)
                for (int c = 0; c < NR; ++c) {
                    const __m512i v = _mm512_maskz_sll_epi64(0xFF, cnt[r][c], count);  // maskz: no GCC 12 -Wuninitialized
                    total[r][c] = weight < 0 ? _mm512_sub_epi64(total[r][c], v) : _mm512_add_epi64(total[r][c], v);
                }
        }
    }
    for (int r = 0; r < MR; ++r)
        for (int c = 0; c < NR; ++c) s[r * lds + c] = sum_lanes(total[r][c]);
}

void tile(const PlaneOperand& x, const PlaneOperand& w, int64_t kw, int mr, int nr, int64_t* s, int64_t lds) {
    if (mr == kBitplaneMr && nr == kBitplaneNr) return tile_fixed<kBitplaneMr, kBitplaneNr>(x, w, kw, s, lds);
    // Edge tiles: one (row, column) at a time.
    for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) {
            PlaneOperand xr = x, wc = w;
            xr.rows += r * x.row_stride;
            wc.rows += c * w.row_stride;
            tile_fixed<1, 1>(xr, wc, kw, s + r * lds + c, lds);
        }
}

}  // namespace

BitplaneTileFn bitplane_tile_vpopcnt() { return tile; }

}  // namespace cpu
}  // namespace lowbit
