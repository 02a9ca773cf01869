// cuda_check.h -- turning CUDA runtime status codes into lowbit::Error.
//
// Every runtime call of the CUDA backend goes through LOWBIT_CUDA_CHECK, so a
// failure reaches Java as LOWBIT_ERR_DEVICE with the call and CUDA's own text:
//
//     LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream_));
//       -> Error(LOWBIT_ERR_DEVICE, "cudaStreamSynchronize(stream_) failed: an illegal memory access ...")
//
// Allocation failures are the one exception (LOWBIT_ERR_OUT_OF_MEMORY, see
// CudaBackend::alloc), and kernel launches are checked with
// LOWBIT_CUDA_CHECK_LAUNCH right after the <<<...>>>.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "../backend.h"

namespace lowbit {
namespace cuda {

// Throws Error(LOWBIT_ERR_DEVICE, "<what> failed: <CUDA's message>").
[[noreturn]] inline void throw_cuda_error(const char* what, cudaError_t err) {
    throw Error(LOWBIT_ERR_DEVICE, std::string(what) + " failed: " + cudaGetErrorString(err) + " (" +
                                       cudaGetErrorName(err) + ")");
}

inline void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) throw_cuda_error(what, err);
}

}  // namespace cuda
}  // namespace lowbit

// The call's source text names it in the message.
#define LOWBIT_CUDA_CHECK(call) ::lowbit::cuda::check((call), #call)

// After a kernel launch: configuration errors (too many threads, too much
// shared memory, no kernel image for this device) surface here, at once.
// cudaGetLastError also clears the thread's last error, so a later check does
// not report this one again.
#define LOWBIT_CUDA_CHECK_LAUNCH(kernel_name) ::lowbit::cuda::check(cudaGetLastError(), "launch of " kernel_name)
