// plan_window.cuh -- reading a flatten plan unit's 8 source values with vector loads.
//
// A flatten plan (lowbit_flatten_quantize) maps each unit of 8 expanded columns to 8 source
// columns s_0 .. s_7 of x's row. FlattenQuant's plans (lowbit.quant.FlattenPlan) keep the first
// copy of every channel at its own index and append the extra copies (strict aligned runs, then
// scattered repeats); plans of older files put the k copies of a split channel next to each other,
// so a unit's sources are a run s, s+1, .., s+7 (no split inside the unit) or a run with repeats
// (s, s+1, s+1, s+2, ..): all of them lie in a short window of the row that starts anywhere, not
// only at a multiple of 8. (The row kernel, flatten_rows.cu, takes F16 / BF16 rows first.) Instead
// of 8 scalar loads, a PlanWindow reads the window as aligned 16-byte chunks and picks the 8 values
// out of the chunk registers with byte permutes (no dynamically indexed register array: those go
// to local memory):
//
//   F16 / BF16  base = s_0 rounded down to a multiple of 8; every s_i - base in [0, 16): the 8
//               values are halfwords of two chunks (the second loaded only when some s_i - base
//               >= 8). Output pair (2p, 2p+1) is built by 7 PRMTs from precomputed selectors:
//               4 pick halfword (e & 3) of each of the 4 word pairs, 2 + 1 merge by bits 2, 3 of e.
//               Runs at any offset and split channels (repeats) are both windows.
//   F32         strict runs only (s_i = s_0 + i): base = s_0 rounded down to a multiple of 4, the
//               8 values are floats o .. o+7 of three chunks (two when o = s_0 % 4 = 0), shifted
//               into place by two selects on o's bits.
//
// A window is taken only when every chunk it loads lies inside the row (base + chunk elements
// <= src_cols) and x's row is 16-byte aligned; all 8 indices are then in range by construction.
// Anything else (an index out of range or before s_0, a unit spanning more than the window, a
// misaligned row) is not a window and the caller gathers it scalar, as before. The multipliers
// and the validation of the entries are the caller's: this header only moves x's bits.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../backend.h"

namespace lowbit {
namespace cuda {

template <int XT>
struct PlanWindow {
    static constexpr bool kHalf = XT != LOWBIT_F32;

    int64_t base = -1;     // first element of the first chunk; -1: not a window
    bool hi = false;       // the second chunk is needed (F16/BF16)
    bool third = false;    // F32: the third chunk is needed (o != 0)
    unsigned sel[4][3];    // F16/BF16: per output pair, the pick / merge-by-bit-2 / merge-by-bit-3 selectors
    unsigned o = 0;        // F32: s_0 % 4

    __device__ __forceinline__ bool ok() const { return base >= 0; }

    // The window of the unit whose 8 source indices are si, in a row of src_cols elements (16-byte
    // aligned rows: the caller's to check), or a PlanWindow with !ok().
    __device__ __forceinline__ static PlanWindow make(const int32_t si[8], int64_t src_cols) {
        PlanWindow w;
        const int32_t s0 = si[0];
        if (s0 < 0 || s0 > INT32_MAX - 16) return w;  // (no wrap-around in the index arithmetic below)
        if constexpr (kHalf) {
            const int32_t b = s0 & ~7;
            unsigned any = 0;
#pragma unroll
            for (int i = 0; i < 8; ++i) any |= static_cast<unsigned>(si[i]) - static_cast<unsigned>(b);
            if (any >= 16u) return w;  // some index before b (huge unsigned) or past the two chunks
            const bool hi = (any & 8u) != 0;
            if (int64_t(b) + (hi ? 16 : 8) > src_cols) return w;
#pragma unroll
            for (int p = 0; p < 4; ++p) {
                const unsigned e0 = static_cast<unsigned>(si[2 * p]) - static_cast<unsigned>(b),
                               e1 = static_cast<unsigned>(si[2 * p + 1]) - static_cast<unsigned>(b);
                const unsigned g0 = e0 & 3u, g1 = e1 & 3u;  // halfword within a word pair: bytes 2g, 2g+1
                w.sel[p][0] = (2 * g0) | (2 * g0 + 1) << 4 | (2 * g1) << 8 | (2 * g1 + 1) << 12;
                // merge two candidates: low halfword from the first (0x10) or second (0x54) operand,
                // high halfword likewise (0x32 / 0x76), by one bit of the word pair index e >> 2
                w.sel[p][1] = ((e0 & 4u) ? 0x54u : 0x10u) | ((e1 & 4u) ? 0x7600u : 0x3200u);
                w.sel[p][2] = ((e0 & 8u) ? 0x54u : 0x10u) | ((e1 & 8u) ? 0x7600u : 0x3200u);
            }
            w.hi = hi;
            w.base = b;
        } else {
            bool run = true;
#pragma unroll
            for (int i = 1; i < 8; ++i)  // unsigned: no overflow for s_0 near INT32_MAX
                run = run && static_cast<unsigned>(si[i]) - static_cast<unsigned>(s0) == static_cast<unsigned>(i);
            const int32_t b = s0 & ~3;
            const bool third = (s0 & 3) != 0;
            if (!run || int64_t(b) + (third ? 12 : 8) > src_cols) return w;
            w.o = static_cast<unsigned>(s0 & 3);
            w.third = third;
            w.base = b;
        }
        return w;
    }

    // The chunks of row (16-byte aligned) this window reads: c[0], c[1], c[2] (unneeded ones are
    // not loaded and hold copies).
    __device__ __forceinline__ void load(const unsigned char* row, uint4 c[3]) const {
        const uint4* p = reinterpret_cast<const uint4*>(row + base * (kHalf ? 2 : 4));
        c[0] = p[0];
        if constexpr (kHalf) {
            c[1] = hi ? p[1] : c[0];
            c[2] = c[0];
        } else {
            c[1] = p[1];
            c[2] = third ? p[2] : c[1];
        }
    }

    // x[s_0] .. x[s_7] as floats (exact), from the chunks load() read.
    __device__ __forceinline__ void extract(const uint4 c[3], float x[8]) const {
        if constexpr (kHalf) {
            const unsigned wd[8] = {c[0].x, c[0].y, c[0].z, c[0].w, c[1].x, c[1].y, c[1].z, c[1].w};
#pragma unroll
            for (int p = 0; p < 4; ++p) {
                const unsigned k0 = __byte_perm(wd[0], wd[1], sel[p][0]);
                const unsigned k1 = __byte_perm(wd[2], wd[3], sel[p][0]);
                const unsigned k2 = __byte_perm(wd[4], wd[5], sel[p][0]);
                const unsigned k3 = __byte_perm(wd[6], wd[7], sel[p][0]);
                const unsigned m01 = __byte_perm(k0, k1, sel[p][1]);
                const unsigned m23 = __byte_perm(k2, k3, sel[p][1]);
                const unsigned pair = __byte_perm(m01, m23, sel[p][2]);
                if constexpr (XT == LOWBIT_F16) {
                    x[2 * p] = __half2float(__ushort_as_half(static_cast<unsigned short>(pair & 0xffffu)));
                    x[2 * p + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(pair >> 16)));
                } else {
                    x[2 * p] = __uint_as_float(pair << 16);
                    x[2 * p + 1] = __uint_as_float(pair & 0xffff0000u);
                }
            }
        } else {
            const unsigned wd[12] = {c[0].x, c[0].y, c[0].z, c[0].w, c[1].x, c[1].y,
                                     c[1].z, c[1].w, c[2].x, c[2].y, c[2].z, c[2].w};
            unsigned t[10];
            const bool by2 = (o & 2u) != 0, by1 = (o & 1u) != 0;
#pragma unroll
            for (int j = 0; j < 10; ++j) t[j] = by2 ? wd[j + 2] : wd[j];
#pragma unroll
            for (int j = 0; j < 8; ++j) x[j] = __uint_as_float(by1 ? t[j + 1] : t[j]);
        }
    }
};

}  // namespace cuda
}  // namespace lowbit
