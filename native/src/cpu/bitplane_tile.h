// bitplane_tile.h -- the plane-pair micro-kernel in portable C++, shared by
// the scalar and the POPCNT sources (compiled once per ISA; internal linkage,
// see float_convert.h for why). POP is the 64-bit popcount to use.
//
// For every plane pair (a, b) the tile's mr x nr popcount sums run over the
// kw words with the x words loaded once per row and reused for nr w rows;
// each pair's counts (<= 64 * kw, exact in int64) are then weighted by
// cx[a] * cw[b] and added to the tile.
#pragma once

#include <cstdint>

#include "cpu/bitplane.h"

namespace lowbit {
namespace cpu {
namespace {

template <class Pop>
void bitplane_tile_portable(const PlaneOperand& x, const PlaneOperand& w, int64_t kw, int mr, int nr, int64_t* s,
                            int64_t lds, Pop pop) {
    int64_t total[kBitplaneMr][kBitplaneNr] = {};
    for (int a = 0; a < x.planes; ++a) {
        const uint64_t* xr[kBitplaneMr];
        for (int r = 0; r < mr; ++r) xr[r] = x.rows + r * x.row_stride + a * x.ld;
        for (int b = 0; b < w.planes; ++b) {
            const uint64_t* wc[kBitplaneNr];
            for (int c = 0; c < nr; ++c) wc[c] = w.rows + c * w.row_stride + b * w.ld;
            uint64_t cnt[kBitplaneMr][kBitplaneNr] = {};
            if (mr == kBitplaneMr && nr == kBitplaneNr) {
                for (int64_t t = 0; t < kw; ++t) {
                    const uint64_t w0 = wc[0][t], w1 = wc[1][t], w2 = wc[2][t], w3 = wc[3][t];
                    for (int r = 0; r < kBitplaneMr; ++r) {
                        const uint64_t v = xr[r][t];
                        cnt[r][0] += pop(v & w0);
                        cnt[r][1] += pop(v & w1);
                        cnt[r][2] += pop(v & w2);
                        cnt[r][3] += pop(v & w3);
                    }
                }
            } else {
                for (int64_t t = 0; t < kw; ++t)
                    for (int r = 0; r < mr; ++r)
                        for (int c = 0; c < nr; ++c) cnt[r][c] += pop(xr[r][t] & wc[c][t]);
            }
            const int64_t weight = x.weight[a] * w.weight[b];
            for (int r = 0; r < mr; ++r)
                for (int c = 0; c < nr; ++c) total[r][c] += weight * static_cast<int64_t>(cnt[r][c]);
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int c = 0; c < nr; ++c) s[r * lds + c] = total[r][c];
}

}  // namespace
}  // namespace cpu
}  // namespace lowbit
