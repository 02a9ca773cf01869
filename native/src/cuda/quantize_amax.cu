// quantize_amax.cu -- computed PER_TENSOR and PER_COLUMN scales, on the device.
//
// These scales need a maximum across blocks. It is built in the output
// `scales` buffer itself, with no host round trip, in three stream-ordered steps:
//
//   1. cudaMemsetAsync(scales, 0)          every slot's bits = +0.0f
//   2. amax kernel                         each block reduces its part of x and
//                                          does ONE atomicMax on the slot's bit
//                                          pattern: for non-negative floats the
//                                          IEEE bit pattern orders like the value
//                                          (max|x| is >= +0, never -0), so the
//                                          unsigned max is the float max
//   3. finalize kernel                     scales[i] = amax_i / qmax (1 if 0)
//
// quantize_apply then reads the finished scales. The slots are the caller's
// own `scales`, so two operations on different buffers never share state and
// no lock is needed between host threads. NaNs are skipped by fmaxf here and
// reported by the quantize pass; an Inf gives an Inf scale (and is reported).
//
//   PER_TENSOR  grid (row blocks x column slices of 2048); 256 threads walk a
//               slice in units of 8 columns (16-byte loads when aligned).
//   PER_COLUMN  blocks of 32 columns x 8 row lanes; grid.y splits the rows,
//               so a tall matrix still fills the GPU; one atomic per column
//               per block.
#include "cuda_backend.h"
#include "cuda_check.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kSlice = int64_t(kThreads) * kUnit;  // columns per (row, slice) work item

__device__ __forceinline__ void atomic_max_nonneg(float* slot, float v) {
    if (v > 0.0f) atomicMax(reinterpret_cast<unsigned*>(slot), __float_as_uint(v));
}

template <int XT, bool VEC>
__global__ void __launch_bounds__(kThreads) amax_tensor_kernel(QuantizeArgs a) {
    __shared__ float red[32];
    float m = 0.0f;
    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const RowIn<XT> in = row_in<XT>(a, r);
        for (int64_t c0 = int64_t(blockIdx.y) * kSlice; c0 < a.cols; c0 += int64_t(gridDim.y) * kSlice) {
            int64_t c1 = c0 + kSlice < a.cols ? c0 + kSlice : a.cols;
            m = fmaxf(m, amax_range<XT, VEC>(in, c0, c1, threadIdx.x, blockDim.x));
        }
    }
    m = block_max(m, red);
    if (threadIdx.x == 0) atomic_max_nonneg(a.scales, m);
}

template <int XT>
__global__ void __launch_bounds__(kThreads) amax_column_kernel(QuantizeArgs a) {
    __shared__ float red[8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;  // blockDim (32, 8)
    const int64_t tiles = (a.cols + 31) / 32;
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {  // uniform trip count: __syncthreads is safe
        int64_t c = t * 32 + tx;
        float m = 0.0f;
        if (c < a.cols) {
            bool bad_plan = false;  // reported by quantize_apply
            for (int64_t r = int64_t(blockIdx.y) * 8 + ty; r < a.rows; r += int64_t(gridDim.y) * 8)
                m = fmaxf(m, fabsf(row_in<XT>(a, r).at(c, bad_plan)));
        }
        red[ty][tx] = m;
        __syncthreads();
        if (ty == 0) {
#pragma unroll
            for (int i = 1; i < 8; ++i) m = fmaxf(m, red[i][tx]);
            if (c < a.cols) atomic_max_nonneg(a.scales + c, m);
        }
        __syncthreads();
    }
}

// scales[i] holds amax_i's bits; turns them into amax_i / qmax in place.
__global__ void __launch_bounds__(kThreads) finalize_scales_kernel(float* scales, int64_t count, int qmax) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
        scales[i] = scale_from_amax(scales[i], qmax);
}

}  // namespace

void launch_compute_scales(const QuantizeArgs& a, const LaunchEnv& env) {
    const bool per_tensor = a.granularity == LOWBIT_PER_TENSOR;
    const int64_t count = per_tensor ? 1 : a.cols;
    const int64_t target = int64_t(env.sm_count) * 16;  // blocks: two waves of 8 per SM
    LOWBIT_CUDA_CHECK(cudaMemsetAsync(a.scales, 0, static_cast<size_t>(count) * sizeof(float), env.stream));

    if (per_tensor) {
        int64_t slices = (a.cols + kSlice - 1) / kSlice;
        dim3 grid(0, grid_for(slices, 65535));
        grid.x = grid_for(a.rows, (target + grid.y - 1) / grid.y);
        dispatch_quantize(a.x_type, 8, quantize_rows_aligned(a), [&](auto xt, auto, auto vec) {
            amax_tensor_kernel<decltype(xt)::value, decltype(vec)::value><<<grid, kThreads, 0, env.stream>>>(a);
            LOWBIT_CUDA_CHECK_LAUNCH("amax_tensor_kernel");
        });
    } else {
        int64_t tiles = (a.cols + 31) / 32;
        dim3 grid(grid_for(tiles, int64_t(1) << 30), 0);
        grid.y = grid_for((a.rows + 7) / 8, std::min<int64_t>(65535, (target + grid.x - 1) / grid.x));
        dispatch_quantize(a.x_type, 8, false, [&](auto xt, auto, auto) {
            amax_column_kernel<decltype(xt)::value><<<grid, dim3(32, 8), 0, env.stream>>>(a);
            LOWBIT_CUDA_CHECK_LAUNCH("amax_column_kernel");
        });
    }
    finalize_scales_kernel<<<grid_for((count + kThreads - 1) / kThreads, 4096), kThreads, 0, env.stream>>>(
        a.scales, count, a.bits == 8 ? 127 : 7);
    LOWBIT_CUDA_CHECK_LAUNCH("finalize_scales_kernel");
}

}  // namespace cuda
}  // namespace lowbit
