// quantize_rowwise.cu -- PER_ROW and PER_GROUP quantization with computed
// scales, fused into one kernel: the hot path (per-token activations).
//
// One thread block owns one row at a time (grid-stride over rows), so the row
// never leaves the block between the reduction and the quantization, and the
// S4 bytes of a row are all written by this block:
//
//   PER_ROW    1. every thread takes max|x| over its units of 8 columns
//              2. block_max -> amax, scale = amax / qmax (1 if amax == 0)
//              3. thread 0 writes scales[r]; every thread quantizes its units
//   PER_GROUP  1. one warp per group (warps stride over the row's groups):
//                 lanes reduce the group, lane 0 writes scales[r * groups + g]
//              2. __syncthreads: the row's scales, just written to global
//                 memory, are visible to the whole block
//              3. every thread quantizes its units, reading the scales back
//                 (plain loads that hit L1; never ld.global.nc here)
//
// The row is read twice from global memory; the second read mostly hits L2
// (a 4096-column F16 row is 8 KiB). Non-finite inputs are recorded by the
// quantize step (see device_status.cuh). With a flatten plan the row is
// gathered (x'[c] = x[src_index[c]] * src_mult[c]) with scalar loads. (The
// windowed gathers of plan_window.cuh and the reciprocal quantizer, which
// flatten_apply.cu uses, made the per-token flatten slower here on the H100:
// 61.7 -> 81.6 us at 4096 x 4096 -> 5120, register pressure; not used.)
//
// The per-token hot path (PER_ROW, aligned rows or a flatten plan, cols % 8 == 0
// and at most 16384 columns) has a register-resident variant instead: each thread
// loads all of its units of the row (up to 4 x 16-byte loads in flight) before
// the block reduction, then quantizes them from registers. The row crosses the
// memory system once, read and written, instead of being read twice; the
// arithmetic (and so every bit of q and the scale) is the same as above.
//
// Per-token rows without a flatten plan go to quantize_per_token.cu first (a persistent,
// pipelined kernel); LOWBIT_ROWQUANT=legacy keeps them here, on the register-resident kernel.
#include "cuda_backend.h"
#include "cuda_check.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kMaxThreads = 256;

template <int XT, int BITS, bool VEC>
__global__ void __launch_bounds__(kMaxThreads, 1) quantize_rowwise_kernel(QuantizeArgs a, StatusRef st) {
    __shared__ float red[32];
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const bool per_group = a.granularity == LOWBIT_PER_GROUP;
    const int64_t groups = per_group ? a.cols / a.group : 1;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    Findings found;

    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const RowIn<XT> in = row_in<XT>(a, r, /*windows=*/false);
        unsigned char* qrow = static_cast<unsigned char*>(a.q) + q_row_offset<BITS>(r, a.ldq);
        unsigned long long bad_col = kNoIndex;
        if (!per_group) {
            float m = amax_range<XT, VEC>(in, 0, a.cols, threadIdx.x, blockDim.x);
            float s = scale_from_amax(block_max(m, red), qmax);
            if (threadIdx.x == 0) a.scales[r] = s;
            RowScale rs{s};
            quantize_row<XT, BITS, VEC>(in, qrow, a.cols, threadIdx.x, blockDim.x, rs, bad_col, found);
        } else {
            const bool vec_group = VEC && a.group % kUnit == 0;  // each group starts 16-byte aligned
            for (int64_t g = warp; g < groups; g += nwarps) {
                int64_t c0 = g * a.group, c1 = c0 + a.group;
                float m = vec_group ? amax_range<XT, true>(in, c0, c1, lane, 32)
                                    : amax_range<XT, false>(in, c0, c1, lane, 32);
                m = warp_max(m);
                if (lane == 0) a.scales[r * groups + g] = scale_from_amax(m, qmax);
            }
            __syncthreads();
            MemoryScales sc = memory_scales(a.scales, LOWBIT_PER_GROUP, r, a.group, a.cols, false);
            quantize_row<XT, BITS, VEC>(in, qrow, a.cols, threadIdx.x, blockDim.x, sc, bad_col, found);
        }
        merge_row_finding(found, r, a.cols, bad_col);
    }
    report_findings(st, found);
}

// PER_ROW, the row in registers: thread t holds units t, t + blockDim.x, ...
// (UPT of them; units past the row's end are skipped). Requires cols % 8 == 0,
// cols <= UPT * 8 * blockDim.x, q rows 8-byte (S8) or 4-byte (S4) aligned, and
// either full 16-byte aligned x rows without a plan (quantize_rows_aligned), or
// (PLAN) a flatten plan whose arrays are 16-byte aligned (RowIn::plan_units):
// each unit's 8 plan entries in vector loads, its 8 values gathered from x once
// (the generic kernel gathers every value twice: for the max, then to quantize).
constexpr int kMaxRegisterThreads = 512;

template <int XT, int BITS, int UPT, bool PLAN>
__global__ void __launch_bounds__(kMaxRegisterThreads) quantize_rows_in_registers_kernel(QuantizeArgs a, StatusRef st) {
    __shared__ float red[32];
    constexpr int qmax = BITS == 8 ? 127 : 7;
    Findings found;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const RowIn<XT> in = row_in<XT>(a, r, /*windows=*/false);
        unsigned char* qrow = static_cast<unsigned char*>(a.q) + q_row_offset<BITS>(r, a.ldq);
        float v[UPT][kUnit];
        float m = 0.0f;
#pragma unroll
        for (int u = 0; u < UPT; ++u) {
            const int64_t c0 = (static_cast<int64_t>(threadIdx.x) + static_cast<int64_t>(u) * blockDim.x) * kUnit;
            if (c0 < a.cols) {
                if constexpr (PLAN) {
                    const unsigned bad = in.gather8(c0, v[u]);
                    if (bad != 0) Findings::keep_min(found.bad_plan, static_cast<unsigned long long>(c0 + __ffs(bad) - 1));
                } else {
                    load_x8<XT>(in.row + c0 * x_bytes(XT), v[u]);
                }
            } else {
#pragma unroll
                for (int i = 0; i < kUnit; ++i) v[u][i] = 0.0f;
            }
        }
#pragma unroll
        for (int u = 0; u < UPT; ++u) {
#pragma unroll
            for (int i = 0; i < kUnit; ++i) m = fmaxf(m, fabsf(v[u][i]));
        }
        const float s = scale_from_amax(block_max(m, red), qmax);
        if (threadIdx.x == 0) a.scales[r] = s;
        RowScale rs{s};
        unsigned long long bad_col = kNoIndex;
#pragma unroll
        for (int u = 0; u < UPT; ++u) {
            const int64_t c0 = (static_cast<int64_t>(threadIdx.x) + static_cast<int64_t>(u) * blockDim.x) * kUnit;
            if (c0 < a.cols) quantize_store8<BITS>(v[u], c0, qrow, rs, bad_col);
        }
        merge_row_finding(found, r, a.cols, bad_col);
    }
    report_findings(st, found);
}

// Threads and units per thread of the register-resident kernel for a row of
// `units` units, or false when the row does not fit it (more than 2048 units =
// 16384 columns). At most 4 units (64 values) per thread, so a thread stays
// near 64 registers and an SM keeps 1024+ threads -- 64 KiB of loads -- in
// flight; wider rows take wider blocks instead (measured on the H100: 8 units
// per thread left 8192- and 14336-column rows at the two-pass kernel's speed).
bool in_registers_shape(int64_t units, int& threads, int& upt) {
    if (units <= 128) {
        threads = static_cast<int>((units + 31) / 32 * 32);
        upt = 1;
        return true;
    }
    threads = units <= 512 ? 128 : units <= 1024 ? 256 : 512;
    const int64_t need = (units + threads - 1) / threads;
    upt = need <= 1 ? 1 : need <= 2 ? 2 : 4;
    return need <= 4;
}

template <int XT, int BITS, bool PLAN>
void launch_in_registers(const QuantizeArgs& a, const LaunchEnv& env, int threads, int upt) {
    unsigned blocks = grid_for(a.rows, int64_t(env.sm_count) * (4096 / threads));
    switch (upt) {
        case 1: quantize_rows_in_registers_kernel<XT, BITS, 1, PLAN><<<blocks, threads, 0, env.stream>>>(a, env.status); break;
        case 2: quantize_rows_in_registers_kernel<XT, BITS, 2, PLAN><<<blocks, threads, 0, env.stream>>>(a, env.status); break;
        default: quantize_rows_in_registers_kernel<XT, BITS, 4, PLAN><<<blocks, threads, 0, env.stream>>>(a, env.status);
    }
    LOWBIT_CUDA_CHECK_LAUNCH("quantize_rows_in_registers_kernel");
}

}  // namespace

void launch_quantize_rowwise(const QuantizeArgs& a, const LaunchEnv& env) {
    if (launch_quantize_per_token(a, env)) return;  // quantize_per_token.cu (not with LOWBIT_ROWQUANT=legacy)
    const int64_t row_units = (a.cols + kUnit - 1) / kUnit;
    int reg_threads = 0, reg_upt = 0;
    const auto q = reinterpret_cast<uintptr_t>(a.q);
    const bool q_units = a.bits == 8 ? (q % 8 == 0 && a.ldq % 8 == 0) : (q % 4 == 0 && a.ldq % 8 == 0);
    const bool plan_units = a.src_index != nullptr && reinterpret_cast<uintptr_t>(a.src_index) % 16 == 0 &&
                            reinterpret_cast<uintptr_t>(a.src_mult) % 16 == 0 && q_units;
    if (a.granularity == LOWBIT_PER_ROW && a.cols % kUnit == 0 && (quantize_rows_aligned(a) || plan_units) &&
        in_registers_shape(row_units, reg_threads, reg_upt)) {
        dispatch_quantize(a.x_type, a.bits, plan_units, [&](auto xt, auto bits, auto plan) {
            launch_in_registers<decltype(xt)::value, decltype(bits)::value, decltype(plan)::value>(a, env, reg_threads, reg_upt);
        });
        return;
    }
    // Threads: one per unit of 8 columns, in whole warps, at most 256; blocks:
    // one per row, up to 8 resident 256-thread blocks per SM, two waves.
    int64_t units = (a.cols + kUnit - 1) / kUnit;
    int threads = static_cast<int>(units >= kMaxThreads ? kMaxThreads : (units + 31) / 32 * 32);
    unsigned blocks = grid_for(a.rows, int64_t(env.sm_count) * 16 * (kMaxThreads / threads));
    dispatch_quantize(a.x_type, a.bits, quantize_rows_aligned(a), [&](auto xt, auto bits, auto vec) {
        quantize_rowwise_kernel<decltype(xt)::value, decltype(bits)::value, decltype(vec)::value>
            <<<blocks, threads, 0, env.stream>>>(a, env.status);
        LOWBIT_CUDA_CHECK_LAUNCH("quantize_rowwise_kernel");
    });
}

}  // namespace cuda
}  // namespace lowbit
