// flatten_staged.cu -- flatten-and-quantize with given scales (FlattenQuant's static activation
// scale), x rows staged in shared memory: x'[r][j] = x[r][src_index[j]] * src_mult[j] in float32,
// then quantized, in one pass. The default for x rows that start 16-byte aligned; the register-
// window kernel (flatten_apply.cu) takes the rest and stays selectable (LOWBIT_FLATTEN=window).
//
// Why not windows in registers: picking a unit's 8 values out of two 16-byte chunks took up to 28
// byte permutes per unit and row, their 12 selectors spilled, and every thread kept its own loads
// in flight (281 instructions per unit and row, 0.41 of copy bandwidth). Here a block owns a tile
// of 1024 expanded columns and walks groups of kRows rows:
//
//   staging   the span of x's row that the tile's plan entries read (min .. max valid source,
//             at most 1024 + one chunk of elements: an expansion plan's tile reads fewer source
//             columns than it writes) is copied into shared memory with cp.async, 16 bytes per
//             instruction, coalesced, for the next group of rows while this one is quantized
//             (two buffers);
//   gather    each thread owns 8 columns of the tile, and keeps their byte offsets into a staged
//             row (32-bit, worked out once) and multipliers in registers: per row and column one
//             shared-memory load at offset + an immediate, one conversion, one multiply;
//   quantize  through the scale's reciprocal (ScaleRecip, quant_math.cuh), the checks folded
//             into two running maxima per 8 values (below), one 4-byte (S8) or 2-byte (S4)
//             store per 4 columns.
//
// Column ownership: warp w of the block has tile columns 256w .. 256w + 255, and lane l the four
// columns 256w + 4l + {0..3} (group A) and the four 128 columns later (group B): the lanes of a
// warp read neighbouring source columns in every load (few shared-memory bank conflicts) and
// store 128 consecutive bytes (S8) per group.
//
// Plan entries, as the generic path reads them: an entry that is out of range or has a non-finite
// multiplier reads as 0 (its offset points at 16 zero bytes after each staged row, its multiplier
// is 0) and is reported (the smallest one). A valid entry outside the staged span (plans that read
// more than 1024 + one chunk source columns for a tile: column selections, permutations) makes its
// thread gather its 8 values from global memory instead (far_gather), as the generic path does.
//
// The bits are the division's (quantize_value), as quant_math.cuh's quantize_pack8 with ScaleRecip
// proves for one value: with y = x' * (1 / s), yc = clamp(y, -qmax, qmax), ty = yc + 1.5 * 2^23,
// r = ty - 1.5 * 2^23, the code is ty's low byte / nibble whenever |yc - r| < 0.5 - 2^-13, x' is
// finite and s's reciprocal is normal. Here the condition is checked for 8 values at once: the
// largest |yc - r| (never NaN: fmaxf / fminf turn a NaN y into -qmax) below 0.5 - 2^-13, and the
// largest |x'| taken with NaN-propagating max (max.NaN.f32) at most FLT_MAX. When it fails (a value
// next to a rounding boundary, a non-finite x', a scale outside [2^-126, 2^126]) the thread takes
// flatten_slow (a call): the division for the values that need it, and the non-finite findings.
// Rare per value, not per warp: F16 activations times short multipliers land exactly on ties
// (bench data: 0.07% of the values, 0.5% of a thread's 8-value rows, 14% of the warp rows at
// S8), and a warp waits for its slow lanes.
//
// Measured (H100, harness with both kernels in one process, 4096 x 4096 F16 -> 5120, the bench's
// plan, per-tensor scale; copy 25.5 us): S8 47.9 -> 35.7 us (0.43 -> 0.58 of copy), S4 42.9 -> 32.7
// us (0.39 -> 0.51); PER_ROW S8 55.5 -> 39.6, PER_COLUMN S8 61.1 -> 44.6, BF16 S8 61.2 -> 49.6 us.
// Nsight Compute (S8): 236 warp instructions per warp and row of 8-value units (the register-
// window kernel: 281), issue 0.66 per scheduler and cycle; the largest stall is the block barrier
// of the row groups (warps of a block wait for the slowest), then fixed-latency dependencies.
// 2 rows per group: 34.7 / 33.3 us; 8 rows (twice the shared memory, 6 blocks per SM): 46 / 40 us.
//
// Findings, as the generic path records them: the smallest invalid plan entry, the smallest bad
// scale index (PER_TENSOR 0, PER_COLUMN the column, PER_ROW the row), and the smallest non-finite x'
// element ((row * cols + col) << 2 | class); each thread keeps its minimum of each and reports it
// once.
#include <climits>
#include <cstdint>

#include "cuda_backend.h"
#include "cp_async.cuh"
#include "cuda_check.h"
#include "flatten_kernels.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kTileCols = kUnit * kThreads;  // expanded columns per block
constexpr int kRows = 4;                     // rows per staged group

// Shared-memory layout of one staged row of x (XT), and of a buffer of kRows rows.
template <int XT>
struct Stage {
    static constexpr int kBytes = x_bytes(XT);
    static constexpr int kChunk = 16 / kBytes;             // elements per 16-byte copy
    static constexpr int kElems = kTileCols + kChunk;      // widest span staged (a span of kTileCols
                                                           // elements from an unaligned start)
    static constexpr int kMaxChunks = kElems / kChunk;
    static constexpr int kZero = kElems * kBytes;          // byte offset of the row's 16 zero bytes
    static constexpr int kRowBytes = kZero + 16;
    static constexpr int kBufBytes = kRows * kRowBytes;
};

// Tile column of this thread's value k (0..7): group A (k < 4) and group B 128 columns later.
__device__ __forceinline__ int lane_col(int tid, int k) {
    return (tid >> 5) * 256 + (k >> 2) * 128 + (tid & 31) * 4 + (k & 3);
}

// max(a, b), NaN when either is NaN (fmaxf would drop it).
__device__ __forceinline__ float max_nan(float a, float b) {
    float r;
    asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

// The element of x at shared-memory address addr (a staged row), as float (exact). Volatile: the
// copies land through cp.async, which the compiler does not see; the barriers order them.
template <int XT>
__device__ __forceinline__ float staged_x(unsigned addr) {
    if constexpr (XT == LOWBIT_F32) {
        float v;
        asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr));
        return v;
    } else {
        unsigned short h;
        asm volatile("ld.shared.u16 %0, [%1];" : "=h"(h) : "r"(addr));
        if constexpr (XT == LOWBIT_F16) return __half2float(__ushort_as_half(h));
        else return __uint_as_float(static_cast<unsigned>(h) << 16);
    }
}

// The codes of 4 columns (the low byte / nibble of each t) as q stores them: S8 4 bytes, S4 the
// low 16 bits (column 0 in the low nibble).
template <int BITS>
__device__ __forceinline__ unsigned pack4(unsigned t0, unsigned t1, unsigned t2, unsigned t3) {
    const unsigned b = __byte_perm(__byte_perm(t0, t1, 0x0040), __byte_perm(t2, t3, 0x0040), 0x5410);
    if constexpr (BITS == 8) {
        return b;
    } else {
        const unsigned w = b & 0x0f0f0f0fu;  // nibble k in byte k
        const unsigned u = w | (w >> 4);     // byte 0: n0 | n1 << 4, byte 2: n2 | n3 << 4
        return __byte_perm(u, 0u, 0x4420);   // bytes 0 and 2 of u, then zeros
    }
}

struct Codes8 {
    unsigned a, b;                  // pack4 of group A and group B
    unsigned long long nonfinite;   // the thread's smallest finding so far
};

// The rare path, for 8 values of which at least one is next to a rounding boundary, not finite,
// or has a scale without a normal reciprocal: each value is quantized as on the fast path where
// that is exact, the others with the division (quantize_value), so a call costs about one
// division and not eight (F16 inputs with short multipliers land on exact ties often enough for
// this to matter). Non-finite x' recorded. Uniform scale s (inv = its reciprocal, fast = normal
// reciprocal), or PER_COLUMN's col_scales (then s, inv, fast unused). Columns >= cols hold 0.
template <int BITS>
__device__ __noinline__ Codes8 flatten_slow(Unit8 v, float s, float inv, bool fast, const float* col_scales, int ca,
                                             int cols, int64_t row, unsigned long long nonfinite) {
    constexpr int qmax = BITS == 8 ? 127 : 7;
    constexpr float fq = static_cast<float>(qmax);
    unsigned t[kUnit];
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const int c = ca + (k >> 2) * 128 + (k & 3);
        float sc = s, ic = inv;
        bool fc = fast;
        if (col_scales != nullptr) {
            sc = c < cols ? col_scales[c] : 1.0f;
            const ScaleRecip r = scale_recip(sc);
            ic = r.inv;
            fc = r.fast;
        }
        const float y = __fmul_rn(v.v[k], ic);
        const float yc = fminf(fmaxf(y, -fq), fq);
        const float ty = __fadd_rn(yc, 0x1.8p23f);
        const float r = __fsub_rn(ty, 0x1.8p23f);
        if (fc && fabsf(__fsub_rn(yc, r)) < 0.5f - 0x1p-13f && fabsf(v.v[k]) <= 0x1.fffffep127f) {
            t[k] = __float_as_uint(ty);
        } else {
            if (c < cols && !is_finite(v.v[k]))
                Findings::keep_min(nonfinite, (static_cast<unsigned long long>(row) * static_cast<unsigned long long>(cols) +
                                               static_cast<unsigned long long>(c)) << 2 |
                                                  nonfinite_class(v.v[k]));
            t[k] = static_cast<unsigned>(quantize_value(v.v[k], sc, qmax));
        }
    }
    return Codes8{pack4<BITS>(t[0], t[1], t[2], t[3]), pack4<BITS>(t[4], t[5], t[6], t[7]), nonfinite};
}

// The 8 values of this thread's columns read from global memory (a plan that reads beyond the
// staged span), invalid entries and columns >= cols as 0.
template <int XT>
__device__ __noinline__ Unit8 far_gather(const unsigned char* row, const int32_t* src_index, const float* src_mult,
                                         int64_t src_cols, int ca, int cols) {
    Unit8 u;
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const int c = ca + (k >> 2) * 128 + (k & 3);
        float v = 0.0f;
        if (c < cols) {
            const int32_t s = src_index[c];
            const float m = src_mult[c];
            if (s >= 0 && s < src_cols && is_finite(m)) v = __fmul_rn(load_x<XT>(row, s), m);
        }
        u.v[k] = v;
    }
    return u;
}

// Stores the 4 codes w (pack4) of columns c .. c+3 of qrow: one store when `whole` (all 4 are
// columns and q's rows allow it), else byte by byte (an S4 byte whole: c is a multiple of 4; the high nibble of
// a last odd column's byte is the code of a column >= cols: 0).
template <int BITS>
__device__ __forceinline__ void store4(unsigned char* qrow, int c, int cols, unsigned w, bool whole) {
    if (whole) {
        if constexpr (BITS == 8) *reinterpret_cast<unsigned*>(qrow + c) = w;
        else *reinterpret_cast<unsigned short*>(qrow + c / 2) = static_cast<unsigned short>(w);
    } else if constexpr (BITS == 8) {
#pragma unroll
        for (int j = 0; j < 4; ++j)
            if (c + j < cols) qrow[c + j] = static_cast<unsigned char>(w >> (8 * j));
    } else {
#pragma unroll
        for (int j = 0; j < 2; ++j)
            if (c + 2 * j < cols) qrow[c / 2 + j] = static_cast<unsigned char>(w >> (8 * j));
    }
}

// Resident blocks asked of ptxas: 8 (64 registers: 32 warps per SM, no spills) with one scale per
// thread and row; PER_COLUMN keeps 8 reciprocals live and would spill at 64: 6 (80 registers).
constexpr int min_blocks(int gran) { return gran == LOWBIT_PER_COLUMN ? 6 : 8; }

// GRAN: LOWBIT_PER_TENSOR, LOWBIT_PER_ROW or LOWBIT_PER_COLUMN (given scales). vec_q: q's rows
// allow 4-byte (S8) / 2-byte (S4) stores at every multiple of 4 columns. x rows 16-byte aligned.
template <int XT, int BITS, int GRAN>
__global__ void __launch_bounds__(kThreads, min_blocks(GRAN)) flatten_staged_kernel(QuantizeArgs a, bool vec_q, StatusRef st) {
    using S = Stage<XT>;
    __shared__ __align__(16) unsigned char smem[2 * S::kBufBytes];
    __shared__ int span[2];  // smallest and largest valid source column of the tile
    const int tid = threadIdx.x;
    const int cols = static_cast<int>(a.cols);
    const int ca = static_cast<int>(blockIdx.x) * kTileCols + lane_col(tid, 0);  // group B: ca + 128

    if (tid == 0) {
        span[0] = INT_MAX;
        span[1] = -1;
    }
    if (tid < 2 * kRows)  // the zero bytes after each staged row (never written by the copies)
        *reinterpret_cast<uint4*>(smem + (tid / kRows) * S::kBufBytes + (tid % kRows) * S::kRowBytes + S::kZero) =
            make_uint4(0u, 0u, 0u, 0u);
    __syncthreads();

    // The plan entries of the thread's 8 columns: validated once.
    Findings found;
    int si[kUnit];
    float m[kUnit];
    unsigned valid = 0;
    int lo = INT_MAX, hi = -1;
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const int c = ca + (k >> 2) * 128 + (k & 3);
        si[k] = 0;
        m[k] = 0.0f;
        if (c < cols) {
            const int32_t s = a.src_index[c];
            const float mk = a.src_mult[c];
            if (s >= 0 && s < a.src_cols && is_finite(mk)) {
                valid |= 1u << k;
                si[k] = s;
                m[k] = mk;
                lo = min(lo, s);
                hi = max(hi, s);
            } else {
                Findings::keep_min(found.bad_plan, static_cast<unsigned long long>(c));
            }
        }
    }
    if (hi >= 0) {
        atomicMin(&span[0], lo);
        atomicMax(&span[1], hi);
    }
    __syncthreads();
    const int span_hi = span[1];
    const int sb = span_hi >= 0 ? span[0] & ~(S::kChunk - 1) : 0;  // first staged element
    const int nchunks = span_hi >= 0 ? min((span_hi + 1 - sb + S::kChunk - 1) / S::kChunk, S::kMaxChunks) : 0;
    const int stage_end = min(span_hi + 1, sb + nchunks * S::kChunk);  // staged: [sb, stage_end) of x's row
    unsigned off[kUnit];
    bool far = false;
#pragma unroll
    for (int k = 0; k < kUnit; ++k) {
        const bool v = (valid >> k) & 1u;
        const bool staged = v && si[k] < stage_end;  // (si >= sb: sb is the smallest, rounded down)
        far = far || (v && !staged);
        off[k] = staged ? static_cast<unsigned>(si[k] - sb) * S::kBytes : static_cast<unsigned>(S::kZero);
        if (!staged) m[k] = 0.0f;
    }

    // Scales, except PER_ROW's (per row, below).
    constexpr float fq = BITS == 8 ? 127.0f : 7.0f;
    float inv[GRAN == LOWBIT_PER_COLUMN ? kUnit : 1];
    float s_uniform = 1.0f;
    bool fast = true;
    if constexpr (GRAN == LOWBIT_PER_TENSOR) {
        s_uniform = a.scales[0];
        if (!(is_finite(s_uniform) && s_uniform > 0.0f)) found.bad_scale = 0;
        const ScaleRecip r = scale_recip(s_uniform);
        inv[0] = r.inv;
        fast = r.fast;
    } else if constexpr (GRAN == LOWBIT_PER_COLUMN) {
#pragma unroll
        for (int k = 0; k < kUnit; ++k) {
            const int c = ca + (k >> 2) * 128 + (k & 3);
            const float sc = c < cols ? a.scales[c] : 1.0f;
            if (c < cols && !(is_finite(sc) && sc > 0.0f))
                Findings::keep_min(found.bad_scale, static_cast<unsigned long long>(c));
            const ScaleRecip r = scale_recip(sc);
            inv[k] = r.inv;
            fast = fast && r.fast;
        }
    }

    const unsigned char* x = static_cast<const unsigned char*>(a.x);
    unsigned char* q = static_cast<unsigned char*>(a.q);
    const int64_t x_ld = a.ldx * S::kBytes;
    const int64_t groups = (a.rows + kRows - 1) / kRows;
    const unsigned smem_base = smem_addr(smem);

    // Copies the staged span of the rows of group g into buffer b (one commit group): this thread's
    // chunks are j = tid, tid + kThreads, ... < nchunks of every row; only the last may be partial.
    constexpr int kPer = (S::kMaxChunks + kThreads - 1) / kThreads;
    const unsigned goff = static_cast<unsigned>(sb) * S::kBytes + tid * 16u;  // chunk tid, from the row start
    const int left = (stage_end - sb) * S::kBytes - tid * 16;                 // bytes staged from there on
    auto stage = [&](int64_t g, int b) {
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            const int64_t row = g * kRows + r;
            if (row < a.rows) {
                const unsigned char* src = x + row * x_ld + goff;
                const unsigned dst = smem_base + b * S::kBufBytes + r * S::kRowBytes + tid * 16u;
#pragma unroll
                for (int i = 0; i < kPer; ++i)
                    if (tid + i * kThreads < nchunks)
                        cp_async16_zfill(dst + i * kThreads * 16, src + i * kThreads * 16, min(16, left - i * kThreads * 16));
            }
        }
        cp_async_commit();
    };

    const int64_t q_ld = BITS == 8 ? a.ldq : a.ldq / 2;  // bytes from one q row to the next
    const bool whole_a = vec_q && ca + 4 <= cols, whole_b = vec_q && ca + 128 + 4 <= cols;

    // Quantizes row `row` (its staged copy: addr[k] + rofs for value k) and stores it at qrow.
    auto quantize_row = [&](int64_t row, const unsigned addr[kUnit], int rofs, unsigned char* qrow) {
        float v[kUnit];
        if (!far) {
#pragma unroll
            for (int k = 0; k < kUnit; ++k) v[k] = __fmul_rn(staged_x<XT>(addr[k] + rofs), m[k]);
        } else {
            const Unit8 u = far_gather<XT>(x + row * x_ld, a.src_index, a.src_mult, a.src_cols, ca, cols);
#pragma unroll
            for (int k = 0; k < kUnit; ++k) v[k] = u.v[k];
        }
        if constexpr (GRAN == LOWBIT_PER_ROW) {
            s_uniform = a.scales[row];
            if (!(is_finite(s_uniform) && s_uniform > 0.0f))
                Findings::keep_min(found.bad_scale, static_cast<unsigned long long>(row));
            const ScaleRecip r = scale_recip(s_uniform);
            inv[0] = r.inv;
            fast = r.fast;
        }
        constexpr float kRound = 0x1.8p23f;       // 1.5 * 2^23
        constexpr float kSafe = 0.5f - 0x1p-13f;  // exactly representable
        float dmax = 0.0f, vmax = 0.0f;
        unsigned t[kUnit];
#pragma unroll
        for (int k = 0; k < kUnit; ++k) {
            const float y = __fmul_rn(v[k], inv[GRAN == LOWBIT_PER_COLUMN ? k : 0]);
            const float yc = fminf(fmaxf(y, -fq), fq);
            const float ty = __fadd_rn(yc, kRound);
            const float r = __fsub_rn(ty, kRound);
            dmax = fmaxf(dmax, fabsf(__fsub_rn(yc, r)));
            vmax = max_nan(vmax, fabsf(v[k]));
            t[k] = __float_as_uint(ty);
        }
        unsigned wa, wb;
        if (fast && dmax < kSafe && vmax <= 0x1.fffffep127f) {
            wa = pack4<BITS>(t[0], t[1], t[2], t[3]);
            wb = pack4<BITS>(t[4], t[5], t[6], t[7]);
        } else {
            Unit8 u;
#pragma unroll
            for (int k = 0; k < kUnit; ++k) u.v[k] = v[k];
            const Codes8 c8 = flatten_slow<BITS>(u, s_uniform, inv[0], fast,
                                                 GRAN == LOWBIT_PER_COLUMN ? a.scales : nullptr, ca, cols, row,
                                                 found.nonfinite);
            wa = c8.a;
            wb = c8.b;
            found.nonfinite = c8.nonfinite;
        }
        store4<BITS>(qrow, ca, cols, wa, whole_a);
        store4<BITS>(qrow, ca + 128, cols, wb, whole_b);
    };

    // Two buffers: the next group's copies are in flight while this group is quantized.
    int64_t g = blockIdx.y;
    if (g < groups) stage(g, 0);
    for (int b = 0; g < groups; g += gridDim.y, b ^= 1) {
        if (g + gridDim.y < groups) {
            stage(g + gridDim.y, b ^ 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();  // every thread's copies of group g have landed
        if (ca < cols) {
            unsigned addr[kUnit];  // value k of the group's first row; row r at + r * kRowBytes
#pragma unroll
            for (int k = 0; k < kUnit; ++k) addr[k] = smem_base + b * S::kBufBytes + off[k];
            const int64_t row0 = g * kRows;
            const int nr = a.rows - row0 < kRows ? static_cast<int>(a.rows - row0) : kRows;
            unsigned char* qrow = q + q_row_offset<BITS>(row0, a.ldq);
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                if (r < nr) quantize_row(row0 + r, addr, r * S::kRowBytes, qrow);
                qrow += q_ld;
            }
        }
        __syncthreads();  // buffer b is free for the group after next
    }
    report_findings(st, found);
}

template <int XT, int BITS>
void launch_typed(const QuantizeArgs& a, const LaunchEnv& env) {
    void (*kernel)(QuantizeArgs, bool, StatusRef) =
        a.granularity == LOWBIT_PER_TENSOR ? flatten_staged_kernel<XT, BITS, LOWBIT_PER_TENSOR>
        : a.granularity == LOWBIT_PER_ROW  ? flatten_staged_kernel<XT, BITS, LOWBIT_PER_ROW>
                                           : flatten_staged_kernel<XT, BITS, LOWBIT_PER_COLUMN>;
    const auto q = reinterpret_cast<uintptr_t>(a.q);
    const bool vec_q = BITS == 8 ? (q % 4 == 0 && a.ldq % 4 == 0) : (q % 2 == 0 && a.ldq % 4 == 0);
    dim3 grid(static_cast<unsigned>((a.cols + kTileCols - 1) / kTileCols), 1);
    // Row groups: one wave of resident blocks, the groups spread evenly over the blocks of a tile.
    int resident = 0;
    LOWBIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, kThreads, 0));
    const int64_t wave = int64_t(env.sm_count) * std::max(resident, 1);
    const int64_t per_tile = std::max<int64_t>(1, wave / grid.x);
    const int64_t groups = (a.rows + kRows - 1) / kRows;
    const int64_t per_block = (groups + per_tile - 1) / per_tile;
    grid.y = grid_for((groups + per_block - 1) / per_block, 65535);
    kernel<<<grid, kThreads, 0, env.stream>>>(a, vec_q, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("flatten_staged_kernel");
}

}  // namespace

bool launch_flatten_staged(const QuantizeArgs& a, const LaunchEnv& env) {
    if (a.src_index == nullptr || !a.scales_given) return false;
    if (a.granularity != LOWBIT_PER_TENSOR && a.granularity != LOWBIT_PER_ROW && a.granularity != LOWBIT_PER_COLUMN)
        return false;
    if (a.rows <= 0 || a.cols <= 0) return false;
    // 32-bit column, source index and staged byte offset arithmetic; the copies need 16-byte aligned
    // x rows.
    if (a.cols > INT32_MAX - 2 * kTileCols || a.src_cols > (INT32_MAX - 64) / 4) return false;
    if (reinterpret_cast<uintptr_t>(a.x) % 16 != 0 || (a.ldx * x_bytes(a.x_type)) % 16 != 0) return false;
    dispatch_quantize(a.x_type, a.bits, false, [&](auto xt, auto bits, auto) {
        launch_typed<decltype(xt)::value, decltype(bits)::value>(a, env);
    });
    return true;
}

}  // namespace cuda
}  // namespace lowbit
