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
// gathered (x'[c] = x[src_index[c]] * src_mult[c]) with scalar loads.
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
        const RowIn<XT> in = row_in<XT>(a, r);
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

}  // namespace

void launch_quantize_rowwise(const QuantizeArgs& a, const LaunchEnv& env) {
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
