// device.cu -- CUDA device discovery and context creation: the three entry
// points that backend.h declares for the CUDA build (no_cuda.cpp defines them
// for builds without CUDA).
//
// The CUDA runtime is linked statically, so liblowbit always loads; whether a
// driver and a device are there is found out here, at run time:
//   cudaErrorInsufficientDriver (35)  no driver, or one older than this
//                                     runtime (CUDA 13.0 needs driver >= 580)
//   cudaErrorNoDevice (100)           a driver but no visible device
//   any other initialization failure  reported the same way: no usable device
#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "../backend.h"
#include "cuda_backend.h"

#ifndef LOWBIT_CUDA_ARCHS_STRING
#define LOWBIT_CUDA_ARCHS_STRING "unknown"
#endif

namespace lowbit {
namespace {

// CUDART_VERSION is major * 1000 + minor * 10.
constexpr int kRuntimeMajor = CUDART_VERSION / 1000;
constexpr int kRuntimeMinor = (CUDART_VERSION % 1000) / 10;

// The reason cudaGetDeviceCount gave no device, in words.
std::string no_device_reason(cudaError_t err) {
    std::string detail = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err) + " (" +
                         cudaGetErrorName(err) + ")";
    switch (err) {
        case cudaErrorInsufficientDriver:
            return "no usable NVIDIA driver (none is installed, or it is older than this library's CUDA " +
                   std::to_string(kRuntimeMajor) + "." + std::to_string(kRuntimeMinor) + " runtime needs): " + detail;
        case cudaErrorNoDevice:
            return "no CUDA device is present or visible (check CUDA_VISIBLE_DEVICES): " + detail;
        default:
            return "the CUDA driver could not be initialized: " + detail;
    }
}

}  // namespace

int cuda_device_count() {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();  // leave no stale error for this thread's next check
        return 0;
    }
    return count;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error(LOWBIT_ERR_NO_DEVICE, no_device_reason(err));
    }
    if (count <= 0) throw Error(LOWBIT_ERR_NO_DEVICE, "no CUDA device is present");
    if (device < 0 || device >= count)
        throw Error(LOWBIT_ERR_NO_DEVICE, "CUDA device index " + std::to_string(device) + " is out of range: " +
                                              std::to_string(count) + " device(s) present (valid indices 0.." +
                                              std::to_string(count - 1) + ")");
    return std::make_unique<cuda::CudaBackend>(device);
}

// "CUDA 13.0 archs 80,89,90a": the runtime compiled in and the SASS targets.
const char* cuda_build_info() {
    static const std::string info = "CUDA " + std::to_string(kRuntimeMajor) + "." + std::to_string(kRuntimeMinor) +
                                    " archs " + LOWBIT_CUDA_ARCHS_STRING;
    return info.c_str();
}

}  // namespace lowbit
