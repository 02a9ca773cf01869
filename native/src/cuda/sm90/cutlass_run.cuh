// cutlass_run.cuh -- one CUTLASS 3.x kernel type (a GemmUniversalAdapter) launched on lowbit's
// terms: what CUTLASS refuses becomes a lowbit::Error naming the configuration, the workspace is
// initialized on the stream, the kernel's opt-in to more than 48 KB of dynamic shared memory is
// made once per device, and launch failures become lowbit::Errors. Shared by the W8A8
// (w8a8_kernel.cuh) and fused 4-bit-weight (w4_kernel.cuh) configurations; included only by the
// sm90/*.cu files, which are compiled for sm_90a alone.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <string>

#include <cutlass/cutlass.h>
#include <cutlass/device_kernel.h>

#include "../cuda_check.h"

namespace lowbit {
namespace cuda {
namespace sm90 {

// The kernel needs more than 48 KB of dynamic shared memory: raise its limit once per device
// (devices 0..63; others every time).
template <class Gemm>
void raise_smem_limit(int device) {
    static std::atomic<unsigned long long> done{0};
    const unsigned long long bit = device < 64 ? 1ull << device : 0;
    if (bit != 0 && (done.load(std::memory_order_acquire) & bit) != 0) return;
    constexpr int smem = Gemm::GemmKernel::SharedStorageSize;
    if (smem >= (48 << 10))
        check(cudaFuncSetAttribute(cutlass::device_kernel<typename Gemm::GemmKernel>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
              "cudaFuncSetAttribute(max dynamic shared memory) of a CUTLASS GEMM kernel");
    done.fetch_or(bit, std::memory_order_acq_rel);
}

// Enqueues the kernel on stream with args; workspace holds Gemm::get_workspace_size(args) bytes.
// `what` names the configuration in errors ("GEMM configuration pp_64x128x256_c1x1").
template <class Gemm>
void run_cutlass(const typename Gemm::Arguments& args, void* workspace, cudaStream_t stream, int device,
                 const std::string& what) {
    cutlass::Status st = Gemm::can_implement(args);
    if (st != cutlass::Status::kSuccess)
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT, what + " cannot run this problem: " + cutlassGetStatusString(st));
    st = Gemm::GemmKernel::initialize_workspace(args, workspace, stream);
    if (st != cutlass::Status::kSuccess)
        throw Error(LOWBIT_ERR_DEVICE, what + ": workspace initialization failed: " + cutlassGetStatusString(st));
    typename Gemm::Params params = Gemm::GemmKernel::to_underlying_arguments(args, workspace);
    raise_smem_limit<Gemm>(device);
    st = Gemm::run(params, stream);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) throw_cuda_error(("launch of " + what).c_str(), err);
    if (st != cutlass::Status::kSuccess)
        throw Error(LOWBIT_ERR_DEVICE, "launch of " + what + " failed: " + cutlassGetStatusString(st));
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
