// flatten_rows.cu -- flatten-and-quantize a row at a time, the row in registers: x'[r][j] =
// x[r][src_index[j]] * src_mult[j] in float32, quantized with a given PER_TENSOR / PER_ROW scale
// (FlattenQuant's static activation scale) or the row's own computed scale (dynamic PER_ROW, per
// token), in one pass over x.
//
// Written for FlattenQuant's plans (lowbit.quant.FlattenPlan): the first copy of every channel
// keeps the channel's own index (src_index[j] == j for j < src_cols) and the extra copies of the
// split channels come after them. The first src_cols expanded columns are then x's row, column for
// column, times a multiplier: an aligned stream. Any other plan gives the same bits, only slower;
// the dispatch (flatten_apply.cu) sends a plan here when the caller's identity_prefix says it is
// one of these (or LOWBIT_FLATTEN=rows).
//
// Layout of the work (the per-token kernel's, quantize_per_token.cu):
//   block    one row at a time; thread t loads x's units of 8 columns t, t + threads, ... (UPL of
//            them, at most 4) with 16-byte loads that L1 does not keep, and owns the expanded
//            units with the same numbers -- unit u < src_cols / 8 whose 8 plan entries are u's
//            own columns ("identity units", worked out once per thread) takes its values from the
//            registers -- plus, through a loop, the units past UPL x threads (the appended copies
//            of wide expansions).
//   gathers  every other unit (appended copies, non-identity plans, invalid entries) reads its 8
//            values from a copy of the row in shared memory: each thread stores the units it
//            loaded, one barrier, then per value one shared-memory load at the plan's index. Two
//            copies alternate with the rows, so one barrier per row is enough (a copy is
//            rewritten two rows later, after every thread has passed the barrier in between).
//            A block whose units are all identity units (the identity plan) skips the copy and
//            the barrier. Past the unrolled units (the appended copies) S8 codes are gathered
//            lane-major, a warp per chunk of 256 columns (gather_lanes: fewer bank conflicts).
//   grid     persistent: as many blocks as are resident, at most one per row; block b takes rows
//            b, b + grid, ... in increasing order.
//   quantize through the scale's reciprocal: given scales through unit_codes (quantize_pack8's
//            test, the division only for the values next to a rounding boundary), the row's own
//            through quantize_pack8_own_scale (its precondition |x'| <= amax holds: the max is
//            taken over the same float32 products, recomputed bit for bit in the second pass); one
//            8-byte (S8) or 4-byte (S4) store per unit.
//
// The bits and findings are those of every other flatten path and of the CPU backend: x' = x *
// m with __fmul_rn, the same quantizer, an invalid plan entry (index outside [0, src_cols) or a
// non-finite multiplier) reads as 0 and is reported (the smallest), a bad given scale is reported
// (PER_TENSOR 0, PER_ROW the row), and the smallest non-finite x' element ((row * cols + col) << 2 |
// class: rows in increasing order per thread, merge_row_finding).
//
// Takes (launch_flatten_rows returns true): a flatten plan, F16 / BF16 x with 16-byte aligned rows,
// src_cols and cols multiples of 8, src_cols <= 16384, cols <= 4 x src_cols, q rows aligned for the
// unit stores, plan arrays 16-byte aligned; PER_TENSOR or PER_ROW given scales, or PER_ROW computed.
// Everything else (F32, PER_COLUMN, PER_GROUP, odd widths) stays with flatten_staged.cu /
// flatten_apply.cu / quantize_rowwise.cu; LOWBIT_FLATTEN=staged|window|legacy sends everything there.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "flatten_kernels.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int64_t kMaxSrcCols = 16384;
constexpr int kMaxThreads = 512;

enum Mode { kGivenTensor, kGivenRow, kOwnRow };

// Element s of a row copy in shared memory, as float (exact).
template <int XT>
__device__ __forceinline__ float shared_x(const unsigned short* row, int s) {
    const unsigned short h = row[s];
    if constexpr (XT == LOWBIT_F16) return __half2float(__ushort_as_half(h));
    else return __uint_as_float(static_cast<unsigned>(h) << 16);
}

// The 8 plan entries of expanded unit u (read through L1: the plan is small and every block reads it).
struct UnitPlan {
    int s[kUnit];
    float m[kUnit];
    __device__ __forceinline__ void load(const QuantizeArgs& a, int u) {
        const int4* si = reinterpret_cast<const int4*>(a.src_index + u * kUnit);
        const float4* mi = reinterpret_cast<const float4*>(a.src_mult + u * kUnit);
        const int4 s0 = __ldg(si), s1 = __ldg(si + 1);
        const float4 m0 = __ldg(mi), m1 = __ldg(mi + 1);
        s[0] = s0.x, s[1] = s0.y, s[2] = s0.z, s[3] = s0.w, s[4] = s1.x, s[5] = s1.y, s[6] = s1.z, s[7] = s1.w;
        m[0] = m0.x, m[1] = m0.y, m[2] = m0.z, m[3] = m0.w, m[4] = m1.x, m[5] = m1.y, m[6] = m1.z, m[7] = m1.w;
    }
};

// The multipliers of unit u (an identity unit: its indices are known).
__device__ __forceinline__ void load_mults(const QuantizeArgs& a, int u, float m[kUnit]) {
    const float4* mi = reinterpret_cast<const float4*>(a.src_mult + u * kUnit);
    const float4 m0 = __ldg(mi), m1 = __ldg(mi + 1);
    m[0] = m0.x, m[1] = m0.y, m[2] = m0.z, m[3] = m0.w, m[4] = m1.x, m[5] = m1.y, m[6] = m1.z, m[7] = m1.w;
}

// x' of a gathered unit u from the row copy: invalid entries read as 0 and are reported.
template <int XT>
__device__ __forceinline__ void gather_unit(const QuantizeArgs& a, const unsigned short* row, int u,
                                            float v[kUnit], Findings& found) {
    UnitPlan p;
    p.load(a, u);
    const unsigned src_cols = static_cast<unsigned>(a.src_cols);
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const bool ok = static_cast<unsigned>(p.s[k]) < src_cols && is_finite(p.m[k]);
        v[k] = ok ? __fmul_rn(shared_x<XT>(row, ok ? p.s[k] : 0), p.m[k]) : 0.0f;
        if (!ok) Findings::keep_min(found.bad_plan, static_cast<unsigned long long>(u * kUnit + k));
    }
}

// x' of an identity unit u whose x values are the registers w.
template <int XT>
__device__ __forceinline__ void identity_unit(const QuantizeArgs& a, const uint4& w, int u, float v[kUnit]) {
    float x[kUnit], m[kUnit];
    load_x8<XT>(reinterpret_cast<const unsigned char*>(&w), x);
    load_mults(a, u, m);
#pragma unroll
    for (int k = 0; k < kUnit; ++k) v[k] = __fmul_rn(x[k], m[k]);
}

// Stores the codes of unit u of the row.
template <int BITS>
__device__ __forceinline__ void store_unit(unsigned char* qrow, int u, unsigned lo, unsigned hi) {
    if constexpr (BITS == 8) *reinterpret_cast<uint2*>(qrow + u * kUnit) = make_uint2(lo, hi);
    else *reinterpret_cast<unsigned*>(qrow + u * (kUnit / 2)) = lo;
}

__device__ __forceinline__ float unit_amax(const float v[kUnit]) {
    float m = 0.0f;
#pragma unroll
    for (int k = 0; k < kUnit; ++k) m = fmaxf(m, fabsf(v[k]));  // NaN dropped, as every max path
    return m;
}

// The codes of a unit (columns c0 .. c0+7) with scale rs, packed as q stores them. CLAMP (given
// scales, which values may exceed): the test of quantize_pack8 with ScaleRecip per element; without
// (the row's own scale, |x'| <= amax): quantize_pack8_own_scale's test, where a non-finite value
// fails the tie test itself. A value that fails takes the division (quantize_value) -- that value
// only, not its whole unit (F16 activations times short multipliers land on rounding ties: about one
// unit in 200 has such a value, and a warp waits for it) -- and a non-finite one is recorded
// ((c0 + k) << 2 | class into bad_col). The same codes as quantize_pack8, bit for bit.
template <int BITS, bool CLAMP = true>
__device__ __forceinline__ void unit_codes(const float v[kUnit], const ScaleRecip& rs, int c0, unsigned& lo,
                                           unsigned& hi, unsigned long long& bad_col) {
    constexpr int qmax = BITS == 8 ? 127 : 7;
    constexpr float fq = static_cast<float>(qmax);
    constexpr float kRound = 0x1.8p23f;
    constexpr float kSafe = 0.5f - 0x1p-13f;
    unsigned t[kUnit];
    bool slow = !rs.fast;
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const float y = __fmul_rn(v[k], rs.inv);
        const float yc = CLAMP ? fminf(fmaxf(y, -fq), fq) : y;
        const float ty = __fadd_rn(yc, kRound);
        const float r = __fsub_rn(ty, kRound);
        slow |= CLAMP ? !(fabsf(__fsub_rn(yc, r)) < kSafe && fabsf(v[k]) <= 0x1.fffffep127f)
                      : !(fabsf(__fsub_rn(yc, r)) < kSafe);
        t[k] = __float_as_uint(ty);
    }
    if (slow) {
#pragma unroll
        for (int k = 0; k < kUnit; ++k) {
            const float y = __fmul_rn(v[k], rs.inv);
            const float yc = CLAMP ? fminf(fmaxf(y, -fq), fq) : y;
            const float r = __fsub_rn(__fadd_rn(yc, kRound), kRound);
            const bool ok = rs.fast && fabsf(__fsub_rn(yc, r)) < kSafe && fabsf(v[k]) <= 0x1.fffffep127f;
            if (!ok) {
                if (!is_finite(v[k]))
                    Findings::keep_min(bad_col, static_cast<unsigned long long>(c0 + k) << 2 | nonfinite_class(v[k]));
                t[k] = static_cast<unsigned>(quantize_value(v[k], rs.s, qmax));
            }
        }
    }
    pack_rounded8<BITS>(t, lo, hi);
}

// ---- the tail: chunks of 256 expanded columns, lane-major ---------------------------------
// Past the unrolled units (the appended copies of FlattenQuant's plans), a warp takes a chunk of 256
// columns and lane l the columns c0 + l + 32 k (k = 0..7): neighbouring lanes read neighbouring
// plan entries (coalesced 4-byte loads) and the sources of neighbouring columns, so the gathers
// from the row copy hit few shared-memory banks twice (a thread-per-unit gather of an
// every-fourth-channel tail reads sources 64 bytes apart across the lanes: 16-way conflicts).

// x' of lane column k (columns c0 + lane + 32 k; those >= cols read as 0).
template <int XT>
__device__ __forceinline__ void gather_lanes(const QuantizeArgs& a, const unsigned short* row, int c0, int cols,
                                             float v[kUnit], Findings& found) {
    const int lane = threadIdx.x & 31;
    const unsigned src_cols = static_cast<unsigned>(a.src_cols);
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const int c = c0 + lane + 32 * k;
        v[k] = 0.0f;
        if (c < cols) {
            const int si = __ldg(a.src_index + c);
            const float m = __ldg(a.src_mult + c);
            const bool ok = static_cast<unsigned>(si) < src_cols && is_finite(m);
            if (ok) v[k] = __fmul_rn(shared_x<XT>(row, si), m);
            else Findings::keep_min(found.bad_plan, static_cast<unsigned long long>(c));
        }
    }
}

// The codes of lane column k with scale rs, through the reciprocal where that is exact (the test of
// quantize_pack8 with ScaleRecip, one element at a time), else the division (quantize_value); a
// non-finite value's column (c << 2 | class) merged into bad_col. Clamping first makes the same
// test right for a row's own scale too (there |y| < qmax + 0.5 and the clamp changes nothing).
template <int BITS>
__device__ __forceinline__ void lane_codes(const float v[kUnit], const ScaleRecip& rs, int c0, int cols,
                                           unsigned (&code)[kUnit], unsigned long long& bad_col) {
    constexpr int qmax = BITS == 8 ? 127 : 7;
    constexpr float fq = static_cast<float>(qmax);
    constexpr float kRound = 0x1.8p23f;
    constexpr float kSafe = 0.5f - 0x1p-13f;
    const int lane = threadIdx.x & 31;
    bool slow = !rs.fast;
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const float y = __fmul_rn(v[k], rs.inv);
        const float yc = fminf(fmaxf(y, -fq), fq);
        const float ty = __fadd_rn(yc, kRound);
        const float r = __fsub_rn(ty, kRound);
        slow |= !(fabsf(__fsub_rn(yc, r)) < kSafe && fabsf(v[k]) <= 0x1.fffffep127f);
        code[k] = __float_as_uint(ty);
    }
    if (slow) {  // rare: the division for the values that need it, and the non-finite bookkeeping
#pragma unroll
        for (int k = 0; k < kUnit; ++k) {
            const int c = c0 + lane + 32 * k;
            if (c < cols && !is_finite(v[k]))
                Findings::keep_min(bad_col, static_cast<unsigned long long>(c) << 2 | nonfinite_class(v[k]));
            code[k] = static_cast<unsigned>(quantize_value(v[k], rs.s, qmax));
        }
    }
}

// Stores lane column k's code: S8 one byte per column (32 consecutive bytes per warp and k); S4
// the even lane writes its column's nibble and the next lane's (shuffled) as one byte.
template <int BITS>
__device__ __forceinline__ void store_lanes(unsigned char* qrow, int c0, int cols, const unsigned (&code)[kUnit]) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const int c = c0 + lane + 32 * k;
        if constexpr (BITS == 8) {
            if (c < cols) qrow[c] = static_cast<unsigned char>(code[k]);
        } else {
            const unsigned next = __shfl_down_sync(0xffffffffu, code[k], 1);
            if ((lane & 1) == 0 && c < cols) qrow[c / 2] = static_cast<unsigned char>((code[k] & 0xfu) | (next & 0xfu) << 4);
        }
    }
}

// Requires what launch_flatten_rows checks; blockDim.x a multiple of 32 with UPL * blockDim.x >=
// src_cols / 8; dynamic shared memory 2 x src_cols x 2 bytes.
template <int XT, int BITS, int UPL, int MODE>
__global__ void __launch_bounds__(kMaxThreads, 2) flatten_rows_kernel(QuantizeArgs a, StatusRef st) {
    extern __shared__ uint4 copies[];  // two row copies of src_units units each
    __shared__ float slots[2][32];
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const int src_units = static_cast<int>(a.src_cols / kUnit), out_units = static_cast<int>(a.cols / kUnit);
    const int t = threadIdx.x, nt = blockDim.x;
    const int warp = t >> 5, nwarps = nt >> 5;
    const int cols = static_cast<int>(a.cols);
    const int tail0 = UPL * nt * kUnit;  // first column of the lane-major tail (a multiple of 256)
    // S8 codes take the lane-major tail; S4 keeps a unit per thread there (the nibble pairs of
    // lane-major columns cost a shuffle and a byte store per pair: 36.4 -> 38.6 us static S4 on
    // the bench's plan, while S8 per token went 50 -> 44 us and static S8 stayed at 39.5).
    constexpr bool kLaneTail = BITS == 8;
    const int64_t ldx_bytes = a.ldx * 2;
    const unsigned char* x = static_cast<const unsigned char*>(a.x);
    Findings found;

    // Identity units among this thread's first UPL expanded units: entries u*8 .. u*8+7, multipliers
    // finite (the rest gathers, and reports what is invalid).
    unsigned ident = 0;
    bool gathers = t + UPL * nt < out_units;  // units past the unrolled ones
#pragma unroll
    for (int i = 0; i < UPL; ++i) {
        const int u = t + i * nt;
        if (u >= out_units) continue;
        bool id = u < src_units;
        if (id) {
            UnitPlan p;
            p.load(a, u);
#pragma unroll
            for (int k = 0; k < kUnit; ++k) id = id && p.s[k] == u * kUnit + k && is_finite(p.m[k]);
        }
        if (id) ident |= 1u << i;
        else gathers = true;
    }
    // Every unrolled unit of the block that exists is an identity unit (FlattenQuant's plans, the
    // identity plan): the unrolled loop then streams without a per-unit branch.
    bool mine_ident = true;
#pragma unroll
    for (int i = 0; i < UPL; ++i) mine_ident = mine_ident && (t + i * nt >= out_units || ((ident >> i) & 1u));
    const bool all_ident = __syncthreads_and(mine_ident);
    const bool copy_rows = __syncthreads_or(gathers);

    float s_given = 1.0f;
    ScaleRecip rs_given = scale_recip(1.0f);
    if constexpr (MODE == kGivenTensor) {
        s_given = a.scales[0];
        if (!(is_finite(s_given) && s_given > 0.0f)) found.bad_scale = 0;
        rs_given = scale_recip(s_given);
    }

    int parity = 0;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x, parity ^= 1) {
        uint4 w[UPL];
        const unsigned char* xrow = x + r * ldx_bytes;
#pragma unroll
        for (int i = 0; i < UPL; ++i) {
            const int u = t + i * nt;
            w[i] = load_once16(xrow + static_cast<unsigned>(u) * 16u, u < src_units);
        }
        uint4* copy = copies + parity * src_units;
        if (copy_rows) {
#pragma unroll
            for (int i = 0; i < UPL; ++i) {
                const int u = t + i * nt;
                if (u < src_units) copy[u] = w[i];
            }
            __syncthreads();
        }
        const unsigned short* crow = reinterpret_cast<const unsigned short*>(copy);
        unsigned char* qrow = static_cast<unsigned char*>(a.q) + q_row_offset<BITS>(r, a.ldq);

        // x' of unrolled unit i (number u): from the registers, or gathered from the row copy.
        auto unit_values = [&](int i, int u, float v[kUnit]) {
            if ((ident >> i) & 1u) identity_unit<XT>(a, w[i], u, v);
            else gather_unit<XT>(a, crow, u, v, found);
        };

        // The scale of the row.
        ScaleRecip rs = rs_given;
        if constexpr (MODE == kGivenRow) {
            s_given = a.scales[r];
            if (!(is_finite(s_given) && s_given > 0.0f))
                Findings::keep_min(found.bad_scale, static_cast<unsigned long long>(r));
            rs = scale_recip(s_given);
        } else if constexpr (MODE == kOwnRow) {
            float m = 0.0f;
#pragma unroll
            for (int i = 0; i < UPL; ++i) {
                const int u = t + i * nt;
                if (u >= out_units) continue;
                float v[kUnit];
                unit_values(i, u, v);
                m = fmaxf(m, unit_amax(v));
            }
            if constexpr (kLaneTail) {
                for (int c0 = tail0 + warp * 256; c0 < cols; c0 += nwarps * 256) {
                    float v[kUnit];
                    gather_lanes<XT>(a, crow, c0, cols, v, found);
                    m = fmaxf(m, unit_amax(v));
                }
            } else {
                for (int u = t + UPL * nt; u < out_units; u += nt) {
                    float v[kUnit];
                    gather_unit<XT>(a, crow, u, v, found);
                    m = fmaxf(m, unit_amax(v));
                }
            }
            const float s = scale_from_amax(row_max(m, slots[parity]), qmax);
            if (t == 0) a.scales[r] = s;
            rs = scale_recip(s);
        }

        // Codes.
        unsigned long long bad_col = kNoIndex;
        auto quantize_unit = [&](const float v[kUnit], int u) {
            unsigned lo, hi;
            // The row's own scale keeps quantize_pack8_own_scale (its division path out of line):
            // inlining unit_codes' per-value path there made per token 8% slower (43.5 -> 47 us).
            if constexpr (MODE == kOwnRow) quantize_pack8_own_scale<BITS>(v, rs, u * kUnit, lo, hi, bad_col);
            else unit_codes<BITS>(v, rs, u * kUnit, lo, hi, bad_col);
            store_unit<BITS>(qrow, u, lo, hi);
        };
        if (all_ident) {
#pragma unroll
            for (int i = 0; i < UPL; ++i) {
                const int u = t + i * nt;
                float v[kUnit];
                identity_unit<XT>(a, w[i], u < out_units ? u : 0, v);
                if (u < out_units) quantize_unit(v, u);
            }
        } else {
#pragma unroll
            for (int i = 0; i < UPL; ++i) {
                const int u = t + i * nt;
                if (u >= out_units) continue;
                float v[kUnit];
                unit_values(i, u, v);
                quantize_unit(v, u);
            }
        }
        if constexpr (kLaneTail) {
            for (int c0 = tail0 + warp * 256; c0 < cols; c0 += nwarps * 256) {  // warp-uniform
                float v[kUnit];
                unsigned code[kUnit];
                gather_lanes<XT>(a, crow, c0, cols, v, found);
                lane_codes<BITS>(v, rs, c0, cols, code, bad_col);
                store_lanes<BITS>(qrow, c0, cols, code);
            }
        } else {
            for (int u = t + UPL * nt; u < out_units; u += nt) {
                float v[kUnit];
                gather_unit<XT>(a, crow, u, v, found);
                quantize_unit(v, u);
            }
        }
        merge_row_finding(found, r, a.cols, bad_col);
    }
    report_findings(st, found);
}

using KernelFn = void (*)(QuantizeArgs, StatusRef);

template <int XT, int BITS, int UPL>
KernelFn kernel_for(const QuantizeArgs& a) {
    if (!a.scales_given) return flatten_rows_kernel<XT, BITS, UPL, kOwnRow>;
    return a.granularity == LOWBIT_PER_TENSOR ? flatten_rows_kernel<XT, BITS, UPL, kGivenTensor>
                                              : flatten_rows_kernel<XT, BITS, UPL, kGivenRow>;
}

template <int XT, int BITS, int UPL>
void launch(const QuantizeArgs& a, const LaunchEnv& env, int threads) {
    const KernelFn kernel = kernel_for<XT, BITS, UPL>(a);
    const size_t smem = static_cast<size_t>(2 * a.src_cols * 2);
    if (smem > 48 * 1024)
        LOWBIT_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    const int per_sm = std::max(1, resident_blocks_per_sm(reinterpret_cast<const void*>(kernel), threads, smem));
    const unsigned blocks = grid_for(a.rows, int64_t(per_sm) * env.sm_count);
    kernel<<<blocks, threads, smem, env.stream>>>(a, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("flatten_rows_kernel");
}

// Units per thread as the per-token kernel picks them: short rows 1 or 2 units in one or two
// warps, F16/BF16 rows of more than 64 units 4 per thread (a 4096-column row: 128 threads).
template <int XT, int BITS>
void launch_for_width(const QuantizeArgs& a, const LaunchEnv& env) {
    const int64_t units = a.src_cols / kUnit;
    const int upl = units <= 32 ? 1 : units <= 64 ? 2 : 4;
    const int threads = static_cast<int>((units + 32 * upl - 1) / (32 * upl) * 32);
    switch (upl) {
        case 1: launch<XT, BITS, 1>(a, env, threads); break;
        case 2: launch<XT, BITS, 2>(a, env, threads); break;
        default: launch<XT, BITS, 4>(a, env, threads);
    }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool launch_flatten_rows(const QuantizeArgs& a, const LaunchEnv& env) {
    if (a.src_index == nullptr || a.src_mult == nullptr) return false;
    if (a.x_type != LOWBIT_F16 && a.x_type != LOWBIT_BF16) return false;
    const bool given = a.scales_given && (a.granularity == LOWBIT_PER_TENSOR || a.granularity == LOWBIT_PER_ROW);
    const bool own = !a.scales_given && a.granularity == LOWBIT_PER_ROW;
    if (!given && !own) return false;
    if (a.rows < 1 || a.src_cols < kUnit || a.src_cols % kUnit != 0 || a.src_cols > kMaxSrcCols) return false;
    if (a.cols < kUnit || a.cols % kUnit != 0 || a.cols > 4 * a.src_cols) return false;
    if (!aligned16(a.x) || (a.ldx * 2) % 16 != 0) return false;
    if (!aligned16(a.src_index) || !aligned16(a.src_mult)) return false;
    const auto q = reinterpret_cast<uintptr_t>(a.q);
    if (a.bits == 8 ? (q % 8 != 0 || a.ldq % 8 != 0) : (q % 4 != 0 || a.ldq % 8 != 0)) return false;
    dispatch_quantize(a.x_type, a.bits, false, [&](auto xt, auto bits, auto) {
        if constexpr (decltype(xt)::value != LOWBIT_F32) launch_for_width<decltype(xt)::value, decltype(bits)::value>(a, env);
    });
    return true;
}

}  // namespace cuda
}  // namespace lowbit
