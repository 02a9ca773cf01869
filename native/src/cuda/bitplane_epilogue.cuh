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

// out[i][j] from S: the zero-point terms (in uint64, wrapping as the CPU backend's), then
// S32 (low 32 bits) or ((float)acc * sx) * sw (+ bias) rounded to the output type.
template <int OUT>
__device__ __forceinline__ void store_out(const BitplaneGemmArgs& g, int64_t i, int64_t j, int64_t s) {
    uint64_t acc64 = static_cast<uint64_t>(s);
    const uint64_t zx = g.x_zeros ? static_cast<uint64_t>(static_cast<int64_t>(g.x_zeros[i])) : 0;
    if (g.w_zeros) {
        const uint64_t zw = static_cast<uint64_t>(static_cast<int64_t>(g.w_zeros[j]));
        acc64 -= zw * static_cast<uint64_t>(static_cast<int64_t>(g.x_sums[i]));
        acc64 += static_cast<uint64_t>(g.k) * zx * zw;
    }
    if (g.x_zeros) acc64 -= zx * static_cast<uint64_t>(static_cast<int64_t>(g.w_sums[j]));
    const int64_t acc = static_cast<int64_t>(acc64);

    const int64_t idx = i * g.ldo + j;
    if constexpr (OUT == LOWBIT_S32) {
        static_cast<int32_t*>(g.out)[idx] = static_cast<int32_t>(static_cast<uint32_t>(acc64));
    } else {
        float v = __fmul_rn(__ll2float_rn(acc), g.x_scales[g.x_scale_count == 1 ? 0 : i]);
        v = __fmul_rn(v, g.w_scales[g.w_scale_count == 1 ? 0 : j]);
        if (g.bias != nullptr) v = __fadd_rn(v, g.bias[j]);
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

// store_out with the output type chosen at run time (an if-chain, as Epilogue::store).
__device__ __forceinline__ void store_out_any(const BitplaneGemmArgs& g, int64_t i, int64_t j, int64_t s) {
    if (g.out_type == LOWBIT_F32) store_out<LOWBIT_F32>(g, i, j, s);
    else if (g.out_type == LOWBIT_S32) store_out<LOWBIT_S32>(g, i, j, s);
    else if (g.out_type == LOWBIT_F16) store_out<LOWBIT_F16>(g, i, j, s);
    else store_out<LOWBIT_BF16>(g, i, j, s);
}

}  // namespace cuda
}  // namespace lowbit
