// epilogue.cuh -- the dequantizing epilogue, per output element (i, j):
//
//     v = ((float)acc[i][j] * a_scale[i or 0]) * b_scale[j or 0]  (+ bias[j])
//
// in float32, step by step: __fmul_rn / __fadd_rn are never contracted into an
// FMA by nvcc, so the result is the same bits as the CPU backend's (built with
// -ffp-contract=off). (float)acc rounds to nearest (__int2float_rn), as a C++
// int -> float conversion does. F16 / BF16 outputs round to nearest even;
// F16 overflows to +-Inf, as IEEE conversion does; NaN gets the CPU
// backend's encoding (below).
//
// The half / bfloat16 conversions are CUTLASS's (cutlass::half_t(float) is
// __float2half_rn on the device; cutlass::bfloat16_t(float) is cvt.rn.bf16.f32
// on sm_80+), so the later CUTLASS GEMM epilogues round the same way.
// out_type S32 stores the raw accumulator (lowbit_gemm_s32).
#pragma once

#include <cutlass/numeric_types.h>

#include <cstdint>

#include "../backend.h"

namespace lowbit {
namespace cuda {

static_assert(sizeof(cutlass::half_t) == 2 && sizeof(cutlass::bfloat16_t) == 2, "16-bit storage types");

struct Epilogue {
    const float* a_scales;  // a_count == 1: per tensor, else per row i
    int64_t a_count;
    const float* b_scales;  // b_count == 1: per tensor, else per column j
    int64_t b_count;
    const float* bias;      // n entries, or null
    int out_type;           // LOWBIT_S32 / F32 / F16 / BF16
    void* out;
    int64_t ldo;

    static Epilogue from(const GemmArgs& g) {
        return Epilogue{g.a_scales, g.a_scale_count, g.b_scales, g.b_scale_count, g.bias, g.out_type, g.out, g.ldo};
    }
    static Epilogue from(const DequantArgs& d) {
        return Epilogue{d.a_scales, d.a_scale_count, d.b_scales, d.b_scale_count, d.bias, d.out_type, d.out, d.ldo};
    }

#if defined(__CUDACC__)
    // NaN (only from NaN/Inf scales or bias) is encoded as the CPU backend
    // does (cpu/float_convert.h), not as the hardware's canonical 0x7FFF:
    // F16 -> 0x7E00 with the sign; BF16 -> the top half with the quiet bit set.
    __device__ __forceinline__ static uint16_t f16_nan(float v) {
        return static_cast<uint16_t>(((__float_as_uint(v) >> 16) & 0x8000u) | 0x7E00u);
    }
    __device__ __forceinline__ static uint16_t bf16_nan(float v) {
        return static_cast<uint16_t>((__float_as_uint(v) >> 16) | 0x0040u);
    }

    // The scale of row i and the scale and bias of column j, loaded apart from the arithmetic so
    // that a kernel writing several outputs can request all of them before its first store (a
    // store may alias them: the compiler cannot hoist a later output's loads above it). Not read
    // for S32 outputs; a null bias reads as 0 and is not added.
    __device__ __forceinline__ float row_scale(int64_t i) const {
        return out_type == LOWBIT_S32 ? 0.0f : a_scales[a_count == 1 ? 0 : i];
    }
    struct Column {
        float scale = 0.0f, bias = 0.0f;
    };
    __device__ __forceinline__ Column column(int64_t j) const {
        Column c;
        if (out_type != LOWBIT_S32) {
            c.scale = b_scales[b_count == 1 ? 0 : j];
            if (bias != nullptr) c.bias = bias[j];
        }
        return c;
    }

    __device__ __forceinline__ float dequant(int32_t acc, float sa, const Column& c) const {
        float v = __fmul_rn(__int2float_rn(acc), sa);
        v = __fmul_rn(v, c.scale);
        if (bias != nullptr) v = __fadd_rn(v, c.bias);
        return v;
    }

    // Writes element (i, j) of the output, for one output type, from its row scale and column.
    template <int OUT>
    __device__ __forceinline__ void store_as(int64_t i, int64_t j, int32_t acc, float sa, const Column& c) const {
        const int64_t idx = i * ldo + j;
        if constexpr (OUT == LOWBIT_S32) {
            static_cast<int32_t*>(out)[idx] = acc;
        } else if constexpr (OUT == LOWBIT_F32) {
            static_cast<float*>(out)[idx] = dequant(acc, sa, c);
        } else if constexpr (OUT == LOWBIT_F16) {
            const float v = dequant(acc, sa, c);
            static_cast<cutlass::half_t*>(out)[idx] = v == v ? cutlass::half_t(v) : cutlass::half_t::bitcast(f16_nan(v));
        } else {
            const float v = dequant(acc, sa, c);
            static_cast<cutlass::bfloat16_t*>(out)[idx] =
                v == v ? cutlass::bfloat16_t(v) : cutlass::bfloat16_t::bitcast(bf16_nan(v));
        }
    }

    // Writes element (i, j) of the output from its row scale and column. (An if-chain, not a
    // switch: with a switch here, unrolled 16 times in the GEMM's store loop, cicc 13.0 ran for
    // minutes.)
    __device__ __forceinline__ void store(int64_t i, int64_t j, int32_t acc, float sa, const Column& c) const {
        if (out_type == LOWBIT_F32) store_as<LOWBIT_F32>(i, j, acc, sa, c);
        else if (out_type == LOWBIT_S32) store_as<LOWBIT_S32>(i, j, acc, sa, c);
        else if (out_type == LOWBIT_F16) store_as<LOWBIT_F16>(i, j, acc, sa, c);
        else store_as<LOWBIT_BF16>(i, j, acc, sa, c);
    }

    // Writes element (i, j) of the output, its inputs loaded here.
    __device__ __forceinline__ void store(int64_t i, int64_t j, int32_t acc) const {
        store(i, j, acc, row_scale(i), column(j));
    }
#endif
};

}  // namespace cuda
}  // namespace lowbit
