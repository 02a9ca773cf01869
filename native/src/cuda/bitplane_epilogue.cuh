// bitplane_epilogue.cuh -- the epilogue of lowbit_bitplane_gemm on CUDA, per output (i, j), from
// S = sum_c value(X[i][c]) * value(W[j][c]) (the product without zero points, exact in int64):
// the zero-point terms in uint64 (wrapping as the CPU backend's), then S32 (the low 32 bits) or
// ((float)acc * sx) * sw (+ bias) rounded to the output type, the CPU backend's bits. Used by the
// binary-tensor-core kernels (bitplane_gemm.cu) and by the weight-streaming decode kernel for
// 2-bit weight planes (gemv_stream.cu).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "../backend.h"

namespace lowbit {
namespace cuda {

// The per-token (row i of X) and per-channel (row j of W) inputs of the epilogue, loaded apart
// from the output arithmetic so that a kernel writing several outputs can request all of them
// before the first store (a store may alias them, so the compiler cannot hoist the loads of a
// later output above an earlier output's store). Absent inputs read as 0 (zero points, and the
// sums only they multiply) or are not used (scales of an S32 output, a null bias).
struct BitplaneTokenTerms {
    uint64_t zx = 0, x_sum = 0;  // zero point of row i (0 without), the row's code sum (used with W zero points)
    float scale = 0.0f;
};
struct BitplaneChannelTerms {
    uint64_t zw = 0, w_sum = 0;  // zero point of channel j (0 without), its code sum (used with X zero points)
    float scale = 0.0f, bias = 0.0f;
};

__device__ __forceinline__ BitplaneTokenTerms load_token_terms(const BitplaneGemmArgs& g, int64_t i) {
    BitplaneTokenTerms t;
    if (g.x_zeros) t.zx = static_cast<uint64_t>(static_cast<int64_t>(g.x_zeros[i]));
    if (g.w_zeros) t.x_sum = static_cast<uint64_t>(static_cast<int64_t>(g.x_sums[i]));
    if (g.out_type != LOWBIT_S32) t.scale = g.x_scales[g.x_scale_count == 1 ? 0 : i];
    return t;
}

__device__ __forceinline__ BitplaneChannelTerms load_channel_terms(const BitplaneGemmArgs& g, int64_t j) {
    BitplaneChannelTerms c;
    if (g.w_zeros) c.zw = static_cast<uint64_t>(static_cast<int64_t>(g.w_zeros[j]));
    if (g.x_zeros) c.w_sum = static_cast<uint64_t>(static_cast<int64_t>(g.w_sums[j]));
    if (g.out_type != LOWBIT_S32) {
        c.scale = g.w_scales[g.w_scale_count == 1 ? 0 : j];
        if (g.bias != nullptr) c.bias = g.bias[j];
    }
    return c;
}

// out[i][j] from S and the row's and channel's terms: the zero-point terms (in uint64, wrapping
// as the CPU backend's), then S32 (low 32 bits) or ((float)acc * sx) * sw (+ bias) rounded to the
// output type.
template <int OUT>
__device__ __forceinline__ void store_out(const BitplaneGemmArgs& g, int64_t i, int64_t j, int64_t s,
                                          const BitplaneTokenTerms& x, const BitplaneChannelTerms& w) {
    uint64_t acc64 = static_cast<uint64_t>(s);
    if (g.w_zeros) {
        acc64 -= w.zw * x.x_sum;
        acc64 += static_cast<uint64_t>(g.k) * x.zx * w.zw;
    }
    if (g.x_zeros) acc64 -= x.zx * w.w_sum;
    const int64_t acc = static_cast<int64_t>(acc64);

    const int64_t idx = i * g.ldo + j;
    if constexpr (OUT == LOWBIT_S32) {
        static_cast<int32_t*>(g.out)[idx] = static_cast<int32_t>(static_cast<uint32_t>(acc64));
    } else {
        float v = __fmul_rn(__ll2float_rn(acc), x.scale);
        v = __fmul_rn(v, w.scale);
        if (g.bias != nullptr) v = __fadd_rn(v, w.bias);
        if constexpr (OUT == LOWBIT_F32) {
            static_cast<float*>(g.out)[idx] = v;
        } else if constexpr (OUT == LOWBIT_F16) {
            // NaN as the CPU backend encodes it (cpu/float_convert.h).
            const unsigned short h = v == v ? __half_as_ushort(__float2half_rn(v))
                                            : static_cast<unsigned short>(((__float_as_uint(v) >> 16) & 0x8000u) | 0x7E00u);
            static_cast<unsigned short*>(g.out)[idx] = h;
        } else {
            const unsigned u = __float_as_uint(v);
            const unsigned short h = v == v ? static_cast<unsigned short>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16)
                                            : static_cast<unsigned short>((u >> 16) | 0x0040u);
            static_cast<unsigned short*>(g.out)[idx] = h;
        }
    }
}

// out[i][j] from S, its inputs loaded here.
template <int OUT>
__device__ __forceinline__ void store_out(const BitplaneGemmArgs& g, int64_t i, int64_t j, int64_t s) {
    store_out<OUT>(g, i, j, s, load_token_terms(g, i), load_channel_terms(g, j));
}

// store_out with the output type chosen at run time (an if-chain, as Epilogue::store).
__device__ __forceinline__ void store_out_any(const BitplaneGemmArgs& g, int64_t i, int64_t j, int64_t s,
                                              const BitplaneTokenTerms& x, const BitplaneChannelTerms& w) {
    if (g.out_type == LOWBIT_F32) store_out<LOWBIT_F32>(g, i, j, s, x, w);
    else if (g.out_type == LOWBIT_S32) store_out<LOWBIT_S32>(g, i, j, s, x, w);
    else if (g.out_type == LOWBIT_F16) store_out<LOWBIT_F16>(g, i, j, s, x, w);
    else store_out<LOWBIT_BF16>(g, i, j, s, x, w);
}

__device__ __forceinline__ void store_out_any(const BitplaneGemmArgs& g, int64_t i, int64_t j, int64_t s) {
    store_out_any(g, i, j, s, load_token_terms(g, i), load_channel_terms(g, j));
}

}  // namespace cuda
}  // namespace lowbit
