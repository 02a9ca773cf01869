// quantize_apply.cu -- quantization with scales already in device memory:
// given (static calibration) scales of any granularity, and the PER_TENSOR /
// PER_COLUMN scales that quantize_amax.cu computed. Flatten plans with given
// PER_TENSOR / PER_ROW / PER_COLUMN scales take flatten_apply.cu instead.
//
// Elementwise over units of 8 columns: grid.x strides over rows, grid.y
// splits a row's units across blocks, so both tall and wide matrices fill the
// GPU. The scale of a unit is looked up per unit (tensor, row, and groups that
// are multiples of 8 wide) or per column (column, other groups). Given scales
// are validated as they are used: the smallest bad scale index and the
// smallest non-finite input position are recorded for the next
// synchronize() / read().
#include "cuda_backend.h"
#include "cuda_check.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <int XT, int BITS, bool VEC>
__global__ void __launch_bounds__(kThreads, 1) quantize_apply_kernel(QuantizeArgs a, bool check_scales, bool windows,
                                                                         StatusRef st) {
    const int64_t tid = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
    const int64_t nthreads = int64_t(gridDim.y) * blockDim.x;
    Findings found;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const RowIn<XT> in = row_in<XT>(a, r, windows);
        unsigned char* qrow = static_cast<unsigned char*>(a.q) + q_row_offset<BITS>(r, a.ldq);
        MemoryScales sc = memory_scales(a.scales, a.granularity, r, a.group, a.cols, check_scales);
        unsigned long long bad_col = kNoIndex;
        quantize_row<XT, BITS, VEC>(in, qrow, a.cols, tid, nthreads, sc, bad_col, found);
        merge_row_finding(found, r, a.cols, bad_col);
        Findings::keep_min(found.bad_scale, sc.bad_index);
    }
    report_findings(st, found);
}

}  // namespace

void launch_quantize_apply(const QuantizeArgs& a, const LaunchEnv& env, bool check_scales) {
    const int64_t units = (a.cols + kUnit - 1) / kUnit;
    const int64_t target = int64_t(env.sm_count) * 16;
    dim3 grid(0, grid_for((units + kThreads - 1) / kThreads, 65535));
    grid.x = grid_for(a.rows, std::max<int64_t>(1, (target + grid.y - 1) / grid.y) * 4);
    dispatch_quantize(a.x_type, a.bits, quantize_rows_aligned(a), [&](auto xt, auto bits, auto vec) {
        quantize_apply_kernel<decltype(xt)::value, decltype(bits)::value, decltype(vec)::value>
            <<<grid, kThreads, 0, env.stream>>>(a, check_scales, !flatten_legacy(), env.status);
        LOWBIT_CUDA_CHECK_LAUNCH("quantize_apply_kernel");
    });
}

}  // namespace cuda
}  // namespace lowbit
