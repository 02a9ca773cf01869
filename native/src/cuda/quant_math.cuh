// quant_math.cuh -- the per-element arithmetic of symmetric quantization and
// the row loops shared by the quantize kernels.
//
// Numerics (lowbit.h), bit-exact with the CPU backend:
//     scale = amax / qmax               (1.0f when amax == 0)
//     q     = clamp(rint(x / scale), -qmax, qmax)
// in IEEE float32: __fdiv_rn is the correctly rounded division whatever
// -prec-div says, rintf rounds half to even, and nothing here is built with
// fast-math (no FTZ: subnormal inputs and scales stay subnormal).
//
// Data layout handled here (one row at a time):
//   x row: `cols` elements of F32 / F16 / BF16 (converted to float first).
//   q row: S8, or packed S4 -- element c in byte c/2, low nibble when c is
//          even; for odd `cols` the last byte's high nibble is written as 0.
//
// A row is walked in units of 8 columns. With `vec` (row starts 16-byte
// aligned in x and 8/4-byte aligned in q, checked once per launch) a full unit
// is one or two 16-byte loads and one 8-byte (S8) or 4-byte (S4) store;
// otherwise, and for the partial last unit, the unit is done column pair by
// column pair, so an S4 byte is always written whole by one thread.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../backend.h"
#include "device_status.cuh"
#include "plan_window.cuh"

namespace lowbit {
namespace cuda {

constexpr int kUnit = 8;  // columns per unit

// ---- element access -------------------------------------------------------

// Element size in bytes of an input dtype (F32 / F16 / BF16).
__host__ __device__ constexpr int x_bytes(int x_type) { return x_type == LOWBIT_F32 ? 4 : 2; }

// Column c of a row of XT, as float (exact for F16 and BF16).
template <int XT>
__device__ __forceinline__ float load_x(const unsigned char* row, int64_t c) {
    if constexpr (XT == LOWBIT_F32) {
        return reinterpret_cast<const float*>(row)[c];
    } else if constexpr (XT == LOWBIT_F16) {
        return __half2float(__ushort_as_half(reinterpret_cast<const unsigned short*>(row)[c]));
    } else {  // BF16: the top half of a float32
        return __uint_as_float(static_cast<unsigned>(reinterpret_cast<const unsigned short*>(row)[c]) << 16);
    }
}

// Columns c .. c+7 (p = address of column c, 16-byte aligned).
template <int XT>
__device__ __forceinline__ void load_x8(const unsigned char* p, float v[kUnit]) {
    if constexpr (XT == LOWBIT_F32) {
        float4 a = reinterpret_cast<const float4*>(p)[0];
        float4 b = reinterpret_cast<const float4*>(p)[1];
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
        v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else {
        uint4 u = *reinterpret_cast<const uint4*>(p);
        unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {  // little endian: the lower column in the low half
            if constexpr (XT == LOWBIT_F16) {
                v[2 * i] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] & 0xffffu)));
                v[2 * i + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w[i] >> 16)));
            } else {
                v[2 * i] = __uint_as_float(w[i] << 16);
                v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
            }
        }
    }
}

// 16 bytes of x when `load` (else zeros), read once: not kept in L1. Predicated rather than
// branched over, so that the next row's loads and the current row's work stay in one basic block
// and ptxas schedules the loads ahead of most of the current row's max (with a branch around them
// it hoisted the whole max above them, and so waited for the current row before asking for the
// next one).
__device__ __forceinline__ uint4 load_once16(const unsigned char* p, bool load) {
    uint4 v = make_uint4(0, 0, 0, 0);
    asm volatile(
        "{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %4, 0;\n\t"
        "@p ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%5];\n\t}"
        : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)
        : "r"(static_cast<int>(load)), "l"(p));
    return v;
}

__device__ __forceinline__ bool is_finite(float v) { return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u; }

__device__ __forceinline__ unsigned nonfinite_class(float v) { return v != v ? kNaN : (v > 0.0f ? kPosInf : kNegInf); }

// The row being quantized, x'[c]: column c of x's row, or with a flatten plan
// (lowbit_flatten_quantize) x[src_index[c]] * src_mult[c] in float32. A plan
// entry that is out of range or has a non-finite multiplier reads as 0 and
// raises `bad_plan` (never an out-of-bounds read).
template <int XT>
struct RowIn {
    const unsigned char* row;
    const int32_t* src_index;  // null: no plan
    const float* src_mult;
    int64_t src_cols;
    bool windows = true;       // gather8 may read windows of x (plan_window.cuh); false: LOWBIT_FLATTEN=legacy

    __device__ __forceinline__ float at(int64_t c, bool& bad_plan) const {
        if (src_index == nullptr) return load_x<XT>(row, c);
        const int32_t s = src_index[c];
        const float m = src_mult[c];
        if (s < 0 || s >= src_cols || !is_finite(m)) {
            bad_plan = true;
            return 0.0f;
        }
        return __fmul_rn(load_x<XT>(row, s), m);
    }

    // Whether whole units can read their 8 plan entries as 16-byte vectors (a plan whose arrays
    // start 16-byte aligned, as every lowbit buffer does).
    __device__ __forceinline__ bool plan_units() const {
        return src_index != nullptr && reinterpret_cast<uintptr_t>(src_index) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(src_mult) % 16 == 0;
    }

    // x'[c0 .. c0+7] through the plan (plan_units(), c0 % 8 == 0): the 8 entries in two 16-byte loads
    // each, then x's values: when the 8 source indices form a window (plan_window.cuh: a run at any
    // offset, or a run with split channels' repeats) and the row is 16-byte aligned, one or two
    // 16-byte loads and byte permutes; otherwise 8 scalar gathers from x's row (L1-resident: the row
    // is re-read by the whole block). Invalid entries read as 0, as at(); bit i of the result flags
    // entry c0 + i. The same bits either way: x[s] * m in float32.
    __device__ __forceinline__ unsigned gather8(int64_t c0, float v[8]) const {
        const int4 i0 = reinterpret_cast<const int4*>(src_index + c0)[0];
        const int4 i1 = reinterpret_cast<const int4*>(src_index + c0)[1];
        const float4 m0 = reinterpret_cast<const float4*>(src_mult + c0)[0];
        const float4 m1 = reinterpret_cast<const float4*>(src_mult + c0)[1];
        const int32_t si[8] = {i0.x, i0.y, i0.z, i0.w, i1.x, i1.y, i1.z, i1.w};
        const float mi[8] = {m0.x, m0.y, m0.z, m0.w, m1.x, m1.y, m1.z, m1.w};
        unsigned bad = 0;
        if (windows && reinterpret_cast<uintptr_t>(row) % 16 == 0) {
            const PlanWindow<XT> w = PlanWindow<XT>::make(si, src_cols);
            if (w.ok()) {  // every index in range: only the multipliers can be bad
                uint4 c[3];
                float x[8];
                w.load(row, c);
                w.extract(c, x);
#pragma unroll
                for (int i = 0; i < 8; ++i) {
                    const bool ok = is_finite(mi[i]);
                    bad |= ok ? 0u : 1u << i;
                    v[i] = ok ? __fmul_rn(x[i], mi[i]) : 0.0f;
                }
                return bad;
            }
        }
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            if (si[i] < 0 || si[i] >= src_cols || !is_finite(mi[i])) {
                bad |= 1u << i;
                v[i] = 0.0f;
            } else {
                v[i] = __fmul_rn(load_x<XT>(row, si[i]), mi[i]);
            }
        }
        return bad;
    }
};

template <int XT>
__device__ __forceinline__ RowIn<XT> row_in(const QuantizeArgs& a, int64_t r, bool windows = true) {
    return RowIn<XT>{static_cast<const unsigned char*>(a.x) + r * a.ldx * x_bytes(XT), a.src_index, a.src_mult,
                     a.src_cols, windows};
}

// A thread's smallest findings (kNoIndex = none).
struct Findings {
    unsigned long long nonfinite = kNoIndex;  // (row * cols + col) << 2 | class
    unsigned long long bad_scale = kNoIndex;  // scale index
    unsigned long long bad_plan = kNoIndex;   // plan entry

    __device__ __forceinline__ static void keep_min(unsigned long long& slot, unsigned long long v) {
        slot = v < slot ? v : slot;
    }
};

// ---- the arithmetic -------------------------------------------------------

// scale = amax / qmax, or 1 when that is 0: amax == 0, or a subnormal amax
// whose quotient underflows (as the CPU backend does; lowbit.h names only
// the first case).
__device__ __forceinline__ float scale_from_amax(float amax, int qmax) {
    float s = __fdiv_rn(amax, static_cast<float>(qmax));
    return s == 0.0f ? 1.0f : s;
}

// q = clamp(rint(x / scale), -qmax, qmax). A NaN quotient (NaN input, or a
// bad given scale: both reported as errors) gives 0, as on the CPU backend.
__device__ __forceinline__ int quantize_value(float x, float scale, int qmax) {
    float r = rintf(__fdiv_rn(x, scale));
    float fq = static_cast<float>(qmax);
    r = r > fq ? fq : r;
    r = r < -fq ? -fq : r;
    return r == r ? static_cast<int>(r) : 0;
}

// The same q from a reciprocal computed once per scale (the flatten kernels): y = x * (1 / scale)
// is within 2^-15 of the correctly rounded quotient x / scale whenever |y| < 128 (two roundings of
// 2^-24 relative each), so clamp(rint(y)) is clamp(rint(x / scale)) unless y lies within 2^-13 of a
// rounding boundary k + 0.5; |y| >= qmax + 1 saturates either way. quantize_pack8 below takes the
// correctly rounded division for each value that is that close, is not finite (NaN / Inf: reported
// there), or has a scale outside [2^-126, 2^126] (1 / scale not a normal float), through a call made
// only for a unit that has such a value (quantize_pack8_slow): bit for bit quantize_value, without a
// division per element.
struct ScaleRecip {
    float s;
    float inv;  // __frcp_rn(s)
    bool fast;  // s is a normal float in [2^-126, 2^126]: inv is normal, the bound above holds
};

__device__ __forceinline__ ScaleRecip scale_recip(float s) {
    return ScaleRecip{s, __frcp_rn(s), s >= 0x1p-126f && s <= 0x1p126f};
}

// ---- reductions -----------------------------------------------------------

// fmaxf drops NaN operands; NaN inputs are reported by the quantize pass.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Max over the block (blockDim.x a multiple of 32, <= 1024); every thread gets
// the result. `smem` holds 32 floats; the block may reuse it after the call.
__device__ __forceinline__ float block_max(float v, float* smem) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();  // smem may still be read by a previous call
    if (lane == 0) smem[warp] = v;
    __syncthreads();
    v = lane < nwarps ? smem[lane] : 0.0f;
    return warp_max(v);
}

// Max over the block of every thread's m with one barrier, for kernels that take a row per block
// in turn (quantize_per_token.cu, flatten_rows.cu): `slots` (32 floats) alternate between two sets
// with the rows, so a set is rewritten only after the barrier of the row in between. Blocks of one
// warp need no shared memory and no barrier.
__device__ __forceinline__ float row_max(float m, float* slots) {
    m = warp_max(m);
    if (blockDim.x == 32) return m;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    if (lane == 0) slots[warp] = m;
    __syncthreads();
    m = lane < nwarps ? slots[lane] : 0.0f;
    return warp_max(m);
}

// max |x'| over columns [c_begin, c_end) of one row, this thread's share:
// units of 8 columns starting at c_begin, taken `tid`, `tid + nthreads`, ...
// VEC requires column c_begin to be 16-byte aligned and no flatten plan.
// Invalid plan entries count as 0 here; quantize_row reports them.
template <int XT, bool VEC>
__device__ __forceinline__ float amax_range(const RowIn<XT>& in, int64_t c_begin, int64_t c_end, int64_t tid,
                                            int64_t nthreads) {
    float m = 0.0f;
    bool bad_plan = false;
    for (int64_t c0 = c_begin + tid * kUnit; c0 < c_end; c0 += nthreads * kUnit) {
        if (VEC && c0 + kUnit <= c_end) {
            float v[kUnit];
            load_x8<XT>(in.row + c0 * x_bytes(XT), v);
#pragma unroll
            for (int i = 0; i < kUnit; ++i) m = fmaxf(m, fabsf(v[i]));
        } else if (!VEC && c0 + kUnit <= c_end && c0 % kUnit == 0 && in.plan_units()) {
            float v[kUnit];
            (void)in.gather8(c0, v);
#pragma unroll
            for (int i = 0; i < kUnit; ++i) m = fmaxf(m, fabsf(v[i]));
        } else {
            int64_t n = c_end - c0 < kUnit ? c_end - c0 : kUnit;
            for (int64_t i = 0; i < n; ++i) m = fmaxf(m, fabsf(in.at(c0 + i, bad_plan)));
        }
    }
    return m;
}

// ---- scales ---------------------------------------------------------------

// One scale for the whole row (per-row computed in the fused kernel).
struct RowScale {
    float s;
    static constexpr bool kUniform = true;           // one scale per unit of 8 columns
    __device__ __forceinline__ float at(int64_t) { return s; }
};

// Scales in device memory, by granularity. With `check`, every scale used is
// validated (finite and > 0, the rule for given scales) and the smallest bad
// index is kept in bad_index.
struct MemoryScales {
    const float* scales;
    int granularity;
    int64_t row;          // the row being quantized
    int64_t group;        // PER_GROUP: group size
    int64_t groups;       // PER_GROUP: cols / group
    bool uniform8;        // the 8 columns of a unit share one scale
    bool check;
    unsigned long long bad_index = kNoIndex;
    static constexpr bool kUniform = false;

    __device__ __forceinline__ int64_t index(int64_t c) const {
        switch (granularity) {
            case LOWBIT_PER_TENSOR: return 0;
            case LOWBIT_PER_ROW: return row;
            case LOWBIT_PER_COLUMN: return c;
            default: return row * groups + c / group;
        }
    }
    __device__ __forceinline__ float at(int64_t c) {
        int64_t i = index(c);
        float s = scales[i];
        if (check && !(is_finite(s) && s > 0.0f)) {
            unsigned long long u = static_cast<unsigned long long>(i);
            bad_index = u < bad_index ? u : bad_index;
        }
        return s;
    }
};

// MemoryScales with the granularity's facts filled in.
__device__ __forceinline__ MemoryScales memory_scales(const float* scales, int granularity, int64_t row,
                                                      int64_t group, int64_t cols, bool check) {
    MemoryScales m{scales, granularity, row, group, granularity == LOWBIT_PER_GROUP ? cols / group : 1,
                   granularity == LOWBIT_PER_TENSOR || granularity == LOWBIT_PER_ROW ||
                       (granularity == LOWBIT_PER_GROUP && group % kUnit == 0),
                   check};
    return m;
}

// ---- quantizing a row -----------------------------------------------------

// The codes of the 8 values of the unit at column c0 with their scales s, packed as q stores them:
// S8 codes 0..3 in the bytes of lo, 4..7 in hi; S4 codes 0..7 in the nibbles of lo (hi = 0). The
// smallest non-finite column is merged into bad_col.
template <int BITS>
__device__ __forceinline__ void quantize_pack8(const float v[kUnit], const float s[kUnit], int64_t c0, unsigned& lo,
                                               unsigned& hi, unsigned long long& bad_col) {
    constexpr int qmax = BITS == 8 ? 127 : 7;
    lo = 0;
    hi = 0;
#pragma unroll
    for (int i = 0; i < kUnit; ++i) {
        if (!is_finite(v[i]))
            Findings::keep_min(bad_col, static_cast<unsigned long long>(c0 + i) << 2 | nonfinite_class(v[i]));
        unsigned q = static_cast<unsigned>(quantize_value(v[i], s[i], qmax));
        if constexpr (BITS == 8) {
            if (i < 4) lo |= (q & 0xffu) << (8 * i); else hi |= (q & 0xffu) << (8 * (i - 4));
        } else {
            lo |= (q & 0xfu) << (4 * i);
        }
    }
}

// quantize_pack8 for a unit quantized with its row's OWN computed scale (dynamic PER_ROW: s =
// scale_from_amax(amax, qmax) where amax = max |x| over the row, this unit included), through the
// reciprocal, with neither a division, a clamp nor a float-to-int conversion per element (those
// run at a quarter of the FMA rate): the same codes and findings, bit for bit.
//   y = x * (1 / s) is within 2^-15 of the correctly rounded x / s for |y| < 128 (ScaleRecip);
//   t = y + 1.5 * 2^23 lies in [2^23, 2^24), where the float spacing is 1, so the addition rounds y
//       to an integer k, half to even as rintf, and the low bits of t's pattern are k's two's
//       complement (1.5 * 2^23 = 0x4B400000 has 22 zero low bits): the code is t's low byte/nibble;
//   r = t - 1.5 * 2^23 = k exactly, and |y - r| is exact (Sterbenz): when it is below 0.5 - 2^-13,
//       y is farther than 2^-13 from the rounding boundaries k +- 0.5, so the correctly rounded
//       quotient rounds to k too;
//   no clamp: every finite |x| <= amax, and s, 1 / s, x * (1 / s) each round by at most 2^-24
//       relative, so |y| <= qmax * (1 + 2^-22) < qmax + 0.5 and k already lies in [-qmax, qmax].
// A unit with a value next to a boundary (|y - r| >= 0.5 - 2^-13, which includes exact ties), a
// non-finite value (y NaN or Inf: the test fails), or a scale outside [2^-126, 2^126] (an Inf
// amax, a subnormal scale: 1 / s not normal) takes the division path instead (quantize_pack8_slow:
// the division for the values that fail), and only that path records non-finite columns -- so the
// findings are quantize_pack8's too.
// PRECONDITION: every finite v[i] satisfies |v[i]| <= amax of the scale's row; for any other
// scale use quantize_pack8 (either overload).
//
// The division path is a call (quantize_pack8_slow, below): inlined into every unit of an unrolled
// kernel it would multiply the code size several times over for a branch that is almost never
// taken.
struct Unit8 {
    float v[kUnit];
};
struct Packed8 {
    unsigned lo, hi;
    unsigned long long bad_col;  // the unit's smallest finding, merged by the caller
};

// The codes of a unit as q stores them, from t[i] = y_i + 1.5 * 2^23 (the rounded value's two's
// complement in t's low bits): S8 the low byte of each t (columns 0..3 in lo, 4..7 in hi), S4 the
// low nibble (column i in bits 4i .. 4i+3 of lo, hi = 0).
template <int BITS>
__device__ __forceinline__ void pack_rounded8(const unsigned t[kUnit], unsigned& lo, unsigned& hi) {
    if constexpr (BITS == 8) {
        lo = __byte_perm(__byte_perm(t[0], t[1], 0x0040), __byte_perm(t[2], t[3], 0x0040), 0x5410);
        hi = __byte_perm(__byte_perm(t[4], t[5], 0x0040), __byte_perm(t[6], t[7], 0x0040), 0x5410);
    } else {
        lo = 0;
#pragma unroll
        for (int i = 0; i < kUnit; ++i) lo |= (t[i] & 0xfu) << (4 * i);
        hi = 0;
    }
}

// The division path of the reciprocal quantizers, for a unit in which some value failed the fast
// test: each value is tested again (quantize_pack8's test with its scale's reciprocal, clamped
// first -- right for a row's own scale too, where the clamp changes nothing) and only the values
// that fail take the correctly rounded division (quantize_value), with the non-finite ones recorded
// ((c0 + i) << 2 | class); the others keep the reciprocal's code. So a unit with one value next to
// a rounding boundary costs one division, not eight (F16 activations times short multipliers land
// on ties often enough for this to show: bench/RESULTS.md). Bit for bit quantize_pack8.
// One scale s for the unit (one float argument: the call site of the own-scale quantizer keeps
// fewer registers live), or a scale per value (the given-scale quantizer).
template <int BITS>
__device__ __forceinline__ unsigned code_or_divide(float v, float s, int64_t col, unsigned long long& bad_col) {
    constexpr int qmax = BITS == 8 ? 127 : 7;
    constexpr float fq = static_cast<float>(qmax);
    const ScaleRecip rs = scale_recip(s);
    const float y = __fmul_rn(v, rs.inv);
    const float yc = fminf(fmaxf(y, -fq), fq);
    const float ty = __fadd_rn(yc, 0x1.8p23f);
    const float r = __fsub_rn(ty, 0x1.8p23f);
    if (rs.fast && fabsf(__fsub_rn(yc, r)) < 0.5f - 0x1p-13f && fabsf(v) <= 0x1.fffffep127f) return __float_as_uint(ty);
    if (!is_finite(v)) Findings::keep_min(bad_col, static_cast<unsigned long long>(col) << 2 | nonfinite_class(v));
    return static_cast<unsigned>(quantize_value(v, s, qmax));
}

template <int BITS>
__device__ __noinline__ Packed8 quantize_pack8_slow(Unit8 u, float s, int64_t c0, unsigned long long bad_col) {
    unsigned t[kUnit];
    Packed8 p;
    p.bad_col = bad_col;
#pragma unroll
    for (int i = 0; i < kUnit; ++i) t[i] = code_or_divide<BITS>(u.v[i], s, c0 + i, p.bad_col);
    pack_rounded8<BITS>(t, p.lo, p.hi);
    return p;
}

template <int BITS>
__device__ __noinline__ Packed8 quantize_pack8_slow(Unit8 u, Unit8 s, int64_t c0, unsigned long long bad_col) {
    unsigned t[kUnit];
    Packed8 p;
    p.bad_col = bad_col;
#pragma unroll
    for (int i = 0; i < kUnit; ++i) t[i] = code_or_divide<BITS>(u.v[i], s.v[i], c0 + i, p.bad_col);
    pack_rounded8<BITS>(t, p.lo, p.hi);
    return p;
}

template <int BITS>
__device__ __forceinline__ void quantize_pack8_own_scale(const float v[kUnit], const ScaleRecip& s, int64_t c0,
                                                         unsigned& lo, unsigned& hi, unsigned long long& bad_col) {
    constexpr float kRound = 0x1.8p23f;          // 1.5 * 2^23
    constexpr float kSafe = 0.5f - 0x1p-13f;     // exactly representable
    unsigned t[kUnit];
    bool exact = !s.fast;
#pragma unroll
    for (int i = 0; i < kUnit; ++i) {
        const float y = __fmul_rn(v[i], s.inv);
        const float ty = __fadd_rn(y, kRound);
        const float r = __fsub_rn(ty, kRound);
        exact |= !(fabsf(__fsub_rn(y, r)) < kSafe);  // NaN (from a NaN or Inf y) fails the test
        t[i] = __float_as_uint(ty);
    }
    if (exact) {  // rare: the division, and the non-finite bookkeeping
        Unit8 u;
#pragma unroll
        for (int i = 0; i < kUnit; ++i) u.v[i] = v[i];
        const Packed8 p = quantize_pack8_slow<BITS>(u, s.s, c0, bad_col);
        lo = p.lo;
        hi = p.hi;
        bad_col = p.bad_col;
        return;
    }
    pack_rounded8<BITS>(t, lo, hi);
}

// quantize_pack8 through the scales' reciprocals (ScaleRecip), for GIVEN scales (values may lie
// beyond qmax * scale: saturation): the same codes and findings as the division, bit for bit, with
// neither a division, floorf nor a float-to-int conversion per element (the old form of this
// function took both quarter-rate instructions per element and made the flatten kernel
// instruction-bound). Per element, with y = x * (1 / s):
//   yc = clamp(y, -qmax, qmax) (two FMNMX), t = yc + 1.5 * 2^23 rounds yc to an integer k, half to
//   even as rintf (quantize_pack8_own_scale below explains the constant), r = t - 1.5 * 2^23 = k;
//   the code is t's low byte / nibble.
// Why it equals clamp(rint(fl(x / s))) when |yc - r| < 0.5 - 2^-13, s's reciprocal is normal and x
// is finite:
//   |y| <= qmax: yc = y is farther than 2^-13 from the boundaries k +- 0.5 and within 2^-15 of the
//     correctly rounded quotient (ScaleRecip's bound, |y| < 128), so both round to k;
//   qmax < |y| < 128: the quotient is above qmax - 2^-15 in magnitude, rounds to >= qmax, clamps to
//     qmax = |k| (same sign);
//   |y| >= 128 (Inf included: x / s beyond FLT_MAX): the quotient is >= 128 (1 - 2^-22) > qmax + 0.5
//     in magnitude, clamps to qmax too.
// A unit with a value next to a boundary (exact ties included), a non-finite x (then y is NaN or
// Inf: its finding must be recorded) or a scale outside [2^-126, 2^126] takes the division path
// (quantize_pack8_slow: a call, kept out of the unrolled hot loop).
template <int BITS>
__device__ __forceinline__ void quantize_pack8(const float v[kUnit], const ScaleRecip s[kUnit], int64_t c0,
                                               unsigned& lo, unsigned& hi, unsigned long long& bad_col) {
    constexpr float fq = BITS == 8 ? 127.0f : 7.0f;
    constexpr float kRound = 0x1.8p23f;       // 1.5 * 2^23
    constexpr float kSafe = 0.5f - 0x1p-13f;  // exactly representable
    unsigned t[kUnit];
    bool exact = false;
#pragma unroll
    for (int i = 0; i < kUnit; ++i) {
        const float y = __fmul_rn(v[i], s[i].inv);
        const float yc = fminf(fmaxf(y, -fq), fq);  // a NaN y gives -fq here: caught by the finiteness test
        const float ty = __fadd_rn(yc, kRound);
        const float r = __fsub_rn(ty, kRound);
        exact |= !(s[i].fast && fabsf(__fsub_rn(yc, r)) < kSafe && fabsf(v[i]) <= 0x1.fffffep127f);
        t[i] = __float_as_uint(ty);
    }
    if (exact) {  // rare: the division, and the non-finite bookkeeping
        Unit8 u, sf;
#pragma unroll
        for (int i = 0; i < kUnit; ++i) {
            u.v[i] = v[i];
            sf.v[i] = s[i].s;
        }
        const Packed8 p = quantize_pack8_slow<BITS>(u, sf, c0, bad_col);
        lo = p.lo;
        hi = p.hi;
        bad_col = p.bad_col;
        return;
    }
    pack_rounded8<BITS>(t, lo, hi);
}

// Quantizes the 8 values of the unit at column c0 with their scales from `sc` and stores them with
// one 8-byte (S8) or 4-byte (S4) store; the smallest non-finite column is merged into bad_col.
template <int BITS, class Scales>
__device__ __forceinline__ void quantize_store8(const float v[kUnit], int64_t c0, unsigned char* qrow, Scales& sc,
                                                unsigned long long& bad_col) {
    float s[kUnit];
    bool uniform;
    if constexpr (Scales::kUniform) uniform = true; else uniform = sc.uniform8;
    if (uniform) {
        float s0 = sc.at(c0);
#pragma unroll
        for (int i = 0; i < kUnit; ++i) s[i] = s0;
    } else {
#pragma unroll
        for (int i = 0; i < kUnit; ++i) s[i] = sc.at(c0 + i);
    }
    unsigned lo, hi;
    quantize_pack8<BITS>(v, s, c0, lo, hi, bad_col);
    if constexpr (BITS == 8) {
        *reinterpret_cast<uint2*>(qrow + c0) = make_uint2(lo, hi);
    } else {
        *reinterpret_cast<unsigned*>(qrow + c0 / 2) = lo;
    }
}

// quantize_store8 with one scale for the unit, through its reciprocal (the same bits).
template <int BITS>
__device__ __forceinline__ void quantize_store8(const float v[kUnit], int64_t c0, unsigned char* qrow,
                                                const ScaleRecip& r, unsigned long long& bad_col) {
    ScaleRecip s[kUnit];
#pragma unroll
    for (int i = 0; i < kUnit; ++i) s[i] = r;
    unsigned lo, hi;
    quantize_pack8<BITS>(v, s, c0, lo, hi, bad_col);
    if constexpr (BITS == 8) {
        *reinterpret_cast<uint2*>(qrow + c0) = make_uint2(lo, hi);
    } else {
        *reinterpret_cast<unsigned*>(qrow + c0 / 2) = lo;
    }
}

// Quantizes this thread's units of one row (units tid, tid + nthreads, ...).
// Scales come from `sc` (RowScale or MemoryScales). The smallest non-finite
// column (as col << 2 | class) is merged into bad_col, the smallest invalid
// plan entry into f.bad_plan. Without VEC, whole units of a flatten plan still
// take vector plan loads and one vector store when q's row allows it
// (RowIn::gather8); everything else goes column pair by column pair.
template <int XT, int BITS, bool VEC, class Scales>
__device__ __forceinline__ void quantize_row(const RowIn<XT>& in, unsigned char* qrow, int64_t cols, int64_t tid,
                                             int64_t nthreads, Scales& sc, unsigned long long& bad_col,
                                             Findings& f) {
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const bool plan_units =
        !VEC && in.plan_units() && reinterpret_cast<uintptr_t>(qrow) % (BITS == 8 ? 8 : 4) == 0;
    for (int64_t c0 = tid * kUnit; c0 < cols; c0 += nthreads * kUnit) {
        if (VEC && c0 + kUnit <= cols) {
            float v[kUnit];
            load_x8<XT>(in.row + c0 * x_bytes(XT), v);
            quantize_store8<BITS>(v, c0, qrow, sc, bad_col);
        } else if (plan_units && c0 + kUnit <= cols) {
            float v[kUnit];
            const unsigned bad = in.gather8(c0, v);
            if (bad != 0) Findings::keep_min(f.bad_plan, static_cast<unsigned long long>(c0 + __ffs(bad) - 1));
            quantize_store8<BITS>(v, c0, qrow, sc, bad_col);
        } else {
            // Column pairs (c, c+1), c even: one S4 byte or two S8 bytes.
            int64_t end = c0 + kUnit < cols ? c0 + kUnit : cols;
            for (int64_t c = c0; c < end; c += 2) {
                const bool has2 = c + 1 < cols;
                bool bp0 = false, bp1 = false;
                const float v0 = in.at(c, bp0);
                const float v1 = has2 ? in.at(c + 1, bp1) : 0.0f;
                if (bp0 || bp1) Findings::keep_min(f.bad_plan, static_cast<unsigned long long>(bp0 ? c : c + 1));
                if (!is_finite(v0))
                    Findings::keep_min(bad_col, static_cast<unsigned long long>(c) << 2 | nonfinite_class(v0));
                else if (!is_finite(v1))
                    Findings::keep_min(bad_col, static_cast<unsigned long long>(c + 1) << 2 | nonfinite_class(v1));
                const int q0 = quantize_value(v0, sc.at(c), qmax);
                const int q1 = has2 ? quantize_value(v1, sc.at(c + 1), qmax) : 0;
                if constexpr (BITS == 8) {
                    qrow[c] = static_cast<unsigned char>(q0);
                    if (has2) qrow[c + 1] = static_cast<unsigned char>(q1);
                } else {
                    qrow[c / 2] = static_cast<unsigned char>((q0 & 0xf) | ((q1 & 0xf) << 4));
                }
            }
        }
    }
}

// Bytes from the start of q to row r (S4: ldq is even, in nibbles).
template <int BITS>
__device__ __forceinline__ int64_t q_row_offset(int64_t r, int64_t ldq) {
    return BITS == 8 ? r * ldq : r * (ldq / 2);
}

// Threads walk their rows in increasing order, so the first row with a
// finding holds the thread's smallest key ((row * cols + col) << 2 | class).
__device__ __forceinline__ void merge_row_finding(Findings& f, int64_t row, int64_t cols, unsigned long long bad_col) {
    if (bad_col != kNoIndex && f.nonfinite == kNoIndex)
        f.nonfinite = (static_cast<unsigned long long>(row) * static_cast<unsigned long long>(cols) << 2) + bad_col;
}

// Records this thread's findings (if any) into the context's status record.
__device__ __forceinline__ void report_findings(const StatusRef& st, const Findings& f) {
    if (f.nonfinite != kNoIndex) record_finding(st, &DeviceStatus::nonfinite, f.nonfinite);
    if (f.bad_scale != kNoIndex) record_finding(st, &DeviceStatus::bad_scale, f.bad_scale);
    if (f.bad_plan != kNoIndex) record_finding(st, &DeviceStatus::bad_plan, f.bad_plan);
}

// ---- host side: choosing an instantiation ---------------------------------

// True when there is no flatten plan, and every row of x starts 16-byte aligned and every row of q 8-byte
// (S8) or 4-byte (S4) aligned, so full units can use vector loads and stores.
// cudaMalloc gives 256-byte aligned bases; what varies is the leading dimension.
inline bool quantize_rows_aligned(const QuantizeArgs& a) {
    auto x = reinterpret_cast<uintptr_t>(a.x), q = reinterpret_cast<uintptr_t>(a.q);
    bool x_ok = x % 16 == 0 && (a.ldx * x_bytes(a.x_type)) % 16 == 0;
    bool q_ok = a.bits == 8 ? (q % 8 == 0 && a.ldq % 8 == 0) : (q % 4 == 0 && a.ldq % 8 == 0);
    return x_ok && q_ok && a.src_index == nullptr;  // a flatten plan gathers: scalar loads
}

template <int V>
using IntC = std::integral_constant<int, V>;

// Calls f(IntC<x_type>, IntC<bits>, std::bool_constant<vec>) with the runtime
// values as compile-time constants (3 x 2 x 2 instantiations).
template <class F>
void dispatch_quantize(int x_type, int bits, bool vec, F&& f) {
    auto with_vec = [&](auto xt, auto b) {
        if (vec) f(xt, b, std::true_type{}); else f(xt, b, std::false_type{});
    };
    auto with_bits = [&](auto xt) {
        if (bits == 8) with_vec(xt, IntC<8>{}); else with_vec(xt, IntC<4>{});
    };
    switch (x_type) {
        case LOWBIT_F32: with_bits(IntC<LOWBIT_F32>{}); break;
        case LOWBIT_F16: with_bits(IntC<LOWBIT_F16>{}); break;
        default: with_bits(IntC<LOWBIT_BF16>{}); break;
    }
}

// Grid size for a grid-stride loop over n items: at most `cap` blocks.
inline unsigned grid_for(int64_t n, int64_t cap) {
    int64_t g = n < cap ? n : cap;
    return static_cast<unsigned>(g < 1 ? 1 : g);
}

}  // namespace cuda
}  // namespace lowbit
