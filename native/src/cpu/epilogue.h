// epilogue.h -- the dequantizing epilogue of lowbit.h, on one row segment.
//
//   v = ((float)acc * a_scale) * b_scale[j]  (+ bias[j])      (no FMA)
//
// written as F32, F16 or BF16. Shared by the fused GEMM (per register tile
// strip) and lowbit_dequantize_s32. Portable C++ only: the same code runs for
// every ISA path, which is what makes the three paths bit-identical.
#pragma once

#include <cstdint>

#include "cpu/float_convert.h"
#include "lowbit/lowbit.h"

namespace lowbit {
namespace cpu {
namespace {

// Where the epilogue's per-column inputs come from, for one output row.
struct EpilogueRow {
    float a_scale;         // a_scale[i] (or the per-tensor one)
    const float* b_scale;  // b_scale + j0, or the single per-tensor scale
    bool b_per_column;     // b_scale is indexed by j
    const float* bias;     // bias + j0, or null
    int out_type;          // LOWBIT_F32 / F16 / BF16 / S32 (raw)
};

template <int OUT, bool PER_COL, bool BIAS>
void epilogue_span_impl(const int32_t* acc, int64_t n, uint32_t sub, const EpilogueRow& e, void* out) {
    const float as = e.a_scale;
    const float bs0 = e.b_scale[0];
    for (int64_t j = 0; j < n; ++j) {
        // acc - sub with two's-complement wrap-around (the VNNI offset correction).
        const int32_t a = static_cast<int32_t>(static_cast<uint32_t>(acc[j]) - sub);
        float v = static_cast<float>(a) * as;
        v = v * (PER_COL ? e.b_scale[j] : bs0);
        if (BIAS) v = v + e.bias[j];
        if (OUT == LOWBIT_F32) static_cast<float*>(out)[j] = v;
        if (OUT == LOWBIT_F16) static_cast<uint16_t*>(out)[j] = f32_to_f16(v);
        if (OUT == LOWBIT_BF16) static_cast<uint16_t*>(out)[j] = f32_to_bf16(v);
    }
}

template <int OUT>
void epilogue_span_out(const int32_t* acc, int64_t n, uint32_t sub, const EpilogueRow& e, void* out) {
    if (e.b_per_column) {
        if (e.bias) epilogue_span_impl<OUT, true, true>(acc, n, sub, e, out);
        else epilogue_span_impl<OUT, true, false>(acc, n, sub, e, out);
    } else {
        if (e.bias) epilogue_span_impl<OUT, false, true>(acc, n, sub, e, out);
        else epilogue_span_impl<OUT, false, false>(acc, n, sub, e, out);
    }
}

// Writes n outputs of one row: out[j] = epilogue(acc[j] - sub). With
// out_type == LOWBIT_S32 it writes the raw (corrected) int32 accumulator.
inline void epilogue_span(const int32_t* acc, int64_t n, uint32_t sub, const EpilogueRow& e, void* out) {
    switch (e.out_type) {
        case LOWBIT_S32: {
            int32_t* o = static_cast<int32_t*>(out);
            for (int64_t j = 0; j < n; ++j) o[j] = static_cast<int32_t>(static_cast<uint32_t>(acc[j]) - sub);
            break;
        }
        case LOWBIT_F32: epilogue_span_out<LOWBIT_F32>(acc, n, sub, e, out); break;
        case LOWBIT_F16: epilogue_span_out<LOWBIT_F16>(acc, n, sub, e, out); break;
        default: epilogue_span_out<LOWBIT_BF16>(acc, n, sub, e, out); break;
    }
}

// Bytes per output element.
inline int64_t out_elem_bytes(int out_type) {
    return (out_type == LOWBIT_F16 || out_type == LOWBIT_BF16) ? 2 : 4;
}

}  // namespace
}  // namespace cpu
}  // namespace lowbit
