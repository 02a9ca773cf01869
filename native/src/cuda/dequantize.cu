// dequantize.cu -- lowbit_dequantize_s32: the GEMM epilogue alone, on an S32
// accumulator matrix. Elementwise: grid.x strides over column chunks of 256
// (coalesced loads of acc and stores of out), grid.y over rows.
#include "cuda_backend.h"
#include "cuda_check.h"
#include "epilogue.cuh"
#include "quant_math.cuh"  // grid_for

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) dequantize_kernel(const int32_t* acc, int64_t m, int64_t n, int64_t ldacc,
                                                              Epilogue ep) {
    for (int64_t i = blockIdx.y; i < m; i += gridDim.y)
        for (int64_t j = int64_t(blockIdx.x) * kThreads + threadIdx.x; j < n; j += int64_t(gridDim.x) * kThreads)
            ep.store(i, j, acc[i * ldacc + j]);
}

}  // namespace

void launch_dequantize(const DequantArgs& d, const LaunchEnv& env) {
    const int64_t target = int64_t(env.sm_count) * 32;
    dim3 grid(grid_for((d.n + kThreads - 1) / kThreads, int64_t(1) << 30), 0);
    grid.y = grid_for(d.m, std::min<int64_t>(65535, std::max<int64_t>(1, (target + grid.x - 1) / grid.x)));
    dequantize_kernel<<<grid, kThreads, 0, env.stream>>>(d.acc, d.m, d.n, d.ldacc, Epilogue::from(d));
    LOWBIT_CUDA_CHECK_LAUNCH("dequantize_kernel");
}

void CudaBackend::dequantize(const DequantArgs& d) {
    activate();
    launch_dequantize(d, launch_env(kOpNone, d.n));
}

}  // namespace cuda
}  // namespace lowbit
