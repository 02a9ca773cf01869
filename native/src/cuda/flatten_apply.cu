// flatten_apply.cu -- flatten-and-quantize with given scales (FlattenQuant's static activation
// scale): x'[r][j] = x[r][src_index[j]] * src_mult[j] in float32, then quantized, in one pass.
//
// The generic path (quantize_apply.cu) walks a row per block and reloads the unit's 8 plan entries
// (64 bytes) for every row, then gathers 8 scalar values: about 3 bytes of plan and 8 loads per
// element it writes. Here a thread owns one unit of 8 expanded columns for many rows instead:
//
//   grid.x   units of the expanded row, one per thread (blocks of up to 128 threads)
//   grid.y   row slices: thread (unit u, slice y) does rows y, y + gridDim.y, ... (one wave of
//            resident blocks: ~30 rows per thread at M = 4096, K' = 5120 on 132 SMs)
//
// so the plan entries, their validation, the unit's scales (PER_TENSOR, PER_COLUMN) and the window
// of x the unit reads (plan_window.cuh: one or two 16-byte loads and byte permutes) are worked out
// once per thread. Per row: the window's one or two 16-byte loads (issued a row ahead), 8
// multiplies, 8 quantizations (through the scale's reciprocal: ScaleRecip in quant_math.cuh),
// and one 8-byte (S8) or 4-byte (S4) store, coalesced across the warp. Units that are not windows
// (an out-of-range entry, an unaligned x row, F32 units with repeats) and the partial last unit
// gather scalar; q rows that are not aligned for the vector store take byte stores. The bits are
// the generic path's: __fmul_rn, then the same q as quantize_value (quantize_pack8 with
// ScaleRecip: a reciprocal per scale instead of a division per element, the division kept for the
// rare values next to a rounding boundary).
//
// Findings, as the generic path records them: the smallest invalid plan entry (its unit's first
// one: the same for every row), the smallest bad scale index (PER_TENSOR 0, PER_COLUMN the column,
// PER_ROW the row), and the smallest non-finite x' element (the rows are walked in increasing order,
// so a thread's first finding is its smallest).
//
// Since the row kernel (flatten_rows.cu) and the staged kernel (flatten_staged.cu, x rows staged
// in shared memory: fewer instructions per unit) this kernel runs only where neither fits (x rows
// not 16-byte aligned), or everywhere with LOWBIT_FLATTEN=window. PER_GROUP given scales stay on the generic path, and so does everything
// when the environment has LOWBIT_FLATTEN=legacy (read once), to compare them in one benchmark run.
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "flatten_kernels.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kMaxThreads = 128;

// One thread's unit: multipliers, validity and window, worked out once. The source indices are
// not kept (registers): the scalar gather, the rare path, reads them again (L1 hits).
template <int XT>
struct UnitPlan {
    const int32_t* src;   // the unit's source indices
    float mi[kUnit];
    unsigned ok = 0;      // bit i: entry i is valid (in range, finite multiplier)
    unsigned bad = 0;     // bit i: entry i is invalid (i < n)
    int n = 0;            // columns of the unit (8, less for the partial last unit)
    PlanWindow<XT> win;   // !win.ok(): gather scalar

    __device__ __forceinline__ void load(const QuantizeArgs& a, int64_t c0) {
        n = a.cols - c0 < kUnit ? static_cast<int>(a.cols - c0) : kUnit;
        src = a.src_index + c0;
        int32_t si[kUnit];
#pragma unroll
        for (int i = 0; i < kUnit; ++i) {
            if (i < n) {
                si[i] = src[i];
                mi[i] = a.src_mult[c0 + i];
                const bool valid = si[i] >= 0 && si[i] < a.src_cols && is_finite(mi[i]);
                ok |= valid ? 1u << i : 0u;
                bad |= valid ? 0u : 1u << i;
            } else {
                si[i] = 0;
                mi[i] = 0.0f;
            }
        }
        if (n == kUnit) win = PlanWindow<XT>::make(si, a.src_cols);
    }

    // Window loads of one row (16-byte aligned rows only; see gather()).
    __device__ __forceinline__ bool windowed(const unsigned char* row) const {
        return win.ok() && reinterpret_cast<uintptr_t>(row) % 16 == 0;
    }

    // x'[c0 .. c0+7] of a row from its window chunks, or gathered scalar; 0 for invalid and
    // absent (i >= n) entries.
    __device__ __forceinline__ void finish(const uint4 c[3], float v[kUnit]) const {
        float x[kUnit];
        win.extract(c, x);
        if (ok == 0xffu) {  // the common case: no per-entry selects
#pragma unroll
            for (int i = 0; i < kUnit; ++i) v[i] = __fmul_rn(x[i], mi[i]);
        } else {
#pragma unroll
            for (int i = 0; i < kUnit; ++i) v[i] = (ok >> i) & 1u ? __fmul_rn(x[i], mi[i]) : 0.0f;
        }
    }
    __device__ __forceinline__ void gather_scalar(const unsigned char* row, float v[kUnit]) const {
#pragma unroll
        for (int i = 0; i < kUnit; ++i) v[i] = (ok >> i) & 1u ? __fmul_rn(load_x<XT>(row, src[i]), mi[i]) : 0.0f;
    }
};

// Stores the packed codes of the unit at c0 (n columns) into qrow: one vector store when the unit is
// whole and qrow allows it, else byte by byte (an S4 byte always whole: c0 is even).
template <int BITS>
__device__ __forceinline__ void store_unit(unsigned char* qrow, int64_t c0, int n, unsigned lo, unsigned hi) {
    if constexpr (BITS == 8) {
        if (n == kUnit && reinterpret_cast<uintptr_t>(qrow) % 8 == 0) {
            *reinterpret_cast<uint2*>(qrow + c0) = make_uint2(lo, hi);
        } else {
#pragma unroll
            for (int i = 0; i < kUnit; ++i)
                if (i < n) qrow[c0 + i] = static_cast<unsigned char>((i < 4 ? lo >> (8 * i) : hi >> (8 * (i - 4))) & 0xffu);
        }
    } else {
        if (n == kUnit && reinterpret_cast<uintptr_t>(qrow) % 4 == 0) {
            *reinterpret_cast<unsigned*>(qrow + c0 / 2) = lo;
        } else {
#pragma unroll
            for (int j = 0; j < kUnit / 2; ++j)
                if (2 * j < n) qrow[c0 / 2 + j] = static_cast<unsigned char>((lo >> (8 * j)) & 0xffu);
        }
    }
}

// Resident blocks asked of ptxas: 8 (64 registers, 1024 threads per SM) for one scale per unit;
// measured on the H100 at 4096 x 4096 -> 5120 F16 (harness, same bits): S8 53.2 -> 48.2 us and
// S4 46.8 -> 42.8 us against the unbounded 90-105 registers, although ptxas spills a few values
// (40-60 bytes, setup and rare-path ones). PER_COLUMN keeps 8 reciprocals live: left unbounded.
constexpr int min_blocks(int gran) { return gran == LOWBIT_PER_COLUMN ? 1 : 8; }

// GRAN: LOWBIT_PER_TENSOR, LOWBIT_PER_ROW or LOWBIT_PER_COLUMN (given scales, validated).
template <int XT, int BITS, int GRAN>
__global__ void __launch_bounds__(kMaxThreads, min_blocks(GRAN)) flatten_apply_kernel(QuantizeArgs a, StatusRef st) {
    const int64_t c0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * kUnit;
    if (c0 >= a.cols || blockIdx.y >= a.rows) return;  // no barriers below: early exit is fine
    UnitPlan<XT> p;
    p.load(a, c0);
    Findings found;
    if (p.bad != 0) found.bad_plan = static_cast<unsigned long long>(c0 + __ffs(p.bad) - 1);

    // The unit's scales and their reciprocals, except PER_ROW's (per row, below). Entries past n: 1,
    // never reported.
    ScaleRecip s[kUnit];
    if constexpr (GRAN == LOWBIT_PER_TENSOR) {
        const float s0 = a.scales[0];
        if (!(is_finite(s0) && s0 > 0.0f)) found.bad_scale = 0;
        const ScaleRecip r = scale_recip(s0);
#pragma unroll
        for (int i = 0; i < kUnit; ++i) s[i] = r;
    } else if constexpr (GRAN == LOWBIT_PER_COLUMN) {
#pragma unroll
        for (int i = 0; i < kUnit; ++i) {
            const float si = i < p.n ? a.scales[c0 + i] : 1.0f;
            if (i < p.n && !(is_finite(si) && si > 0.0f))
                Findings::keep_min(found.bad_scale, static_cast<unsigned long long>(c0 + i));
            s[i] = scale_recip(si);
        }
    }

    const unsigned char* x = static_cast<const unsigned char*>(a.x);
    unsigned char* q = static_cast<unsigned char*>(a.q);
    const int64_t x_ld = a.ldx * x_bytes(XT);
    auto quantize_store = [&](int64_t r, const float v[kUnit]) {
        if constexpr (GRAN == LOWBIT_PER_ROW) {
            const float sr = a.scales[r];
            if (!(is_finite(sr) && sr > 0.0f)) Findings::keep_min(found.bad_scale, static_cast<unsigned long long>(r));
            const ScaleRecip rr = scale_recip(sr);
#pragma unroll
            for (int i = 0; i < kUnit; ++i) s[i] = rr;
        }
        unsigned long long bad_col = kNoIndex;
        unsigned lo, hi;
        quantize_pack8<BITS>(v, s, c0, lo, hi, bad_col);
        store_unit<BITS>(q + q_row_offset<BITS>(r, a.ldq), c0, p.n, lo, hi);
        merge_row_finding(found, r, a.cols, bad_col);
    };

    // One row ahead: the next row's window chunks are loaded before this row is quantized.
    auto fetch = [&](int64_t r, uint4 c[3]) {
        const unsigned char* row = x + r * x_ld;
        const bool w = p.windowed(row);
        if (w) p.win.load(row, c);
        return w;
    };
    const int64_t step = gridDim.y;
    uint4 cur[3];
    bool cur_w = fetch(blockIdx.y, cur);
    for (int64_t r = blockIdx.y; r < a.rows; r += step) {
        uint4 nxt[3];
        const bool nxt_w = r + step < a.rows && fetch(r + step, nxt);
        float v[kUnit];
        if (cur_w) p.finish(cur, v);
        else p.gather_scalar(x + r * x_ld, v);
        quantize_store(r, v);
        if (nxt_w) {
#pragma unroll
            for (int k = 0; k < 3; ++k) cur[k] = nxt[k];
        }
        cur_w = nxt_w;
    }
    report_findings(st, found);
}

template <int XT, int BITS>
void launch_typed(const QuantizeArgs& a, const LaunchEnv& env) {
    void (*kernel)(QuantizeArgs, StatusRef) = a.granularity == LOWBIT_PER_TENSOR ? flatten_apply_kernel<XT, BITS, LOWBIT_PER_TENSOR>
                                              : a.granularity == LOWBIT_PER_ROW  ? flatten_apply_kernel<XT, BITS, LOWBIT_PER_ROW>
                                                                                 : flatten_apply_kernel<XT, BITS, LOWBIT_PER_COLUMN>;
    const int64_t units = (a.cols + kUnit - 1) / kUnit;
    const int threads = static_cast<int>(units >= kMaxThreads ? kMaxThreads : (units + 31) / 32 * 32);
    dim3 grid(static_cast<unsigned>((units + threads - 1) / threads), 1);
    // Row slices: one wave of resident blocks (8 blocks of 128 threads per SM; PER_COLUMN fewer).
    int resident = 0;
    LOWBIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, 0));
    const int64_t wave = int64_t(env.sm_count) * std::max(resident, 1);
    grid.y = grid_for(wave / grid.x, std::min<int64_t>(a.rows, 65535));  // rounded down: no second wave
    kernel<<<grid, threads, 0, env.stream>>>(a, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("flatten_apply_kernel");
}

}  // namespace

// LOWBIT_FLATTEN (read once): "legacy" = the generic paths for everything, "window" = this file's
// kernel for every layout, "staged" = the staged kernel (flatten_staged.cu) where x's rows are
// 16-byte aligned and this one elsewhere, "rows" = the row kernel (flatten_rows.cu) wherever it
// fits; unset = the row kernel for plans whose caller says every source column is its own first
// copy (identity_prefix == src_cols: FlattenQuant's appended order, where the row kernel streams
// and only the appended copies gather), else as "staged" (the adjacent order of older files, where
// the staged kernel is faster: bench/RESULTS.md). Computed PER_ROW scales (per token) take the row
// kernel on the same rule, else quantize_rowwise.cu. For comparisons in one benchmark run.
static const char* flatten_choice() {
    static const char* choice = [] {
        const char* v = std::getenv("LOWBIT_FLATTEN");
        return v == nullptr ? "" : v;
    }();
    return choice;
}

bool flatten_legacy() { return std::strcmp(flatten_choice(), "legacy") == 0; }

static bool flatten_rows_chosen(const QuantizeArgs& a) {
    const char* c = flatten_choice();
    if (*c == '\0') return a.identity_prefix == a.src_cols;
    if (std::strcmp(c, "rows") == 0) return true;
    if (std::strcmp(c, "staged") == 0 || std::strcmp(c, "window") == 0 || std::strcmp(c, "legacy") == 0) return false;
    throw Error(LOWBIT_ERR_INVALID_ARGUMENT, std::string("LOWBIT_FLATTEN=") + c +
                                                 " is not understood: leave it unset, or use 'rows', 'staged', 'window' or 'legacy'");
}

bool launch_flatten_per_token(const QuantizeArgs& a, const LaunchEnv& env) {
    if (a.src_index == nullptr || a.scales_given || a.granularity != LOWBIT_PER_ROW) return false;
    return flatten_rows_chosen(a) && launch_flatten_rows(a, env);
}

bool launch_flatten_window(const QuantizeArgs& a, const LaunchEnv& env) {
    if (a.src_index == nullptr || !a.scales_given) return false;
    if (a.granularity != LOWBIT_PER_TENSOR && a.granularity != LOWBIT_PER_ROW && a.granularity != LOWBIT_PER_COLUMN)
        return false;
    if (a.rows <= 0 || a.cols <= 0) return false;
    dispatch_quantize(a.x_type, a.bits, false, [&](auto xt, auto bits, auto) {
        launch_typed<decltype(xt)::value, decltype(bits)::value>(a, env);
    });
    return true;
}

bool launch_flatten_apply(const QuantizeArgs& a, const LaunchEnv& env) {
    if (a.src_index == nullptr || !a.scales_given || flatten_legacy()) return false;
    if (a.granularity != LOWBIT_PER_TENSOR && a.granularity != LOWBIT_PER_ROW && a.granularity != LOWBIT_PER_COLUMN)
        return false;
    if (a.rows <= 0 || a.cols <= 0) return true;  // nothing to do (the API rejects these anyway)
    if (flatten_rows_chosen(a) && launch_flatten_rows(a, env)) return true;
    if (std::strcmp(flatten_choice(), "window") != 0 && launch_flatten_staged(a, env)) return true;
    return launch_flatten_window(a, env);
}

}  // namespace cuda
}  // namespace lowbit
