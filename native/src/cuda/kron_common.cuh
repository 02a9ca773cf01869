// kron_common.cuh -- what the lowbit_kron_quantize kernels (kron_quantize.cu: exact and TF32;
// kron_quantize_half.cu: HALF) share: the order-preserving integer image of a float through which
// they reduce a token's min / max with shared-memory atomics, and the per-token scale step.
#pragma once

#include <cstdint>

#include "../backend.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {

// Order-preserving int image of a float (for atomicMax / atomicMin): finite
// floats compare as their images do; -0 < +0.
__device__ __forceinline__ int ordered(float f) {
    const int i = __float_as_int(f);
    return i >= 0 ? i : i ^ 0x7FFFFFFF;
}
__device__ __forceinline__ float from_ordered(int i) { return __int_as_float(i >= 0 ? i : i ^ 0x7FFFFFFF); }

// The per-token scale step of every kernel, one thread per token: the clipped range's scale (lowbit.h: amax =
// max(|clip_max * max y|, |clip_min * min y|), scale = amax / qmax), written to s_scale and to
// scales[row], and the token's first non-finite finding (x before y) kept in found.
// The clipped range's scale alone (hi, lo: ordered images of the token's max and min y), for the
// kernels where every thread of a token computes it (the same operations, so the same bits).
template <int QMAX>
__device__ __forceinline__ float clipped_scale(const KronQuantizeArgs& a, int hi, int lo) {
    const float amax =
        fmaxf(fabsf(__fmul_rn(a.clip_max, from_ordered(hi))), fabsf(__fmul_rn(a.clip_min, from_ordered(lo))));
    return scale_from_amax(amax, QMAX);
}

template <int QMAX>
__device__ __forceinline__ void token_scale(const KronQuantizeArgs& a, int n, int64_t row, int hi, int lo,
                                            unsigned long long bad_x, unsigned long long bad_y, float& s_scale,
                                            Findings& found) {
    const float scale = clipped_scale<QMAX>(a, hi, lo);
    s_scale = scale;
    a.scales[row] = scale;
    const unsigned long long row_key = static_cast<unsigned long long>(row) * static_cast<unsigned long long>(n) << 2;
    if (bad_x != kNoIndex)
        Findings::keep_min(found.nonfinite, row_key + bad_x);
    else if (bad_y != kNoIndex)
        Findings::keep_min(found.nonfinite, row_key + bad_y);
}

}  // namespace cuda
}  // namespace lowbit
