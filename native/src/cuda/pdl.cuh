// pdl.cuh -- programmatic dependent launch (sm_90): a kernel launched with the attribute
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the kernel before it on the
// stream is still running. Two instructions make that safe:
//
//   pdl_wait()      griddepcontrol.wait: returns once the previous kernel has completed and its
//                   memory is visible. Nothing that kernel may have written is read, and nothing
//                   it may read is written, before this point.
//   pdl_trigger()   griddepcontrol.launch_dependents: lets the NEXT kernel (if launched with the
//                   attribute) be scheduled before this one ends. Called only after pdl_wait(), so
//                   that when the next kernel starts, the one before this has completed.
//
// Both are no-ops for a kernel launched without the attribute (and compile to nothing below
// sm_90). The host side decides per launch whether the attribute is set (pdl_launch_allowed).
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "backend.h"
#include "cuda_check.h"

namespace lowbit {
namespace cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// How the weight-streaming kernels use programmatic dependent launch; LOWBIT_PDL chooses
// (read once): "off" (plain stream order), "wait" (launched early, every load after
// pdl_wait), "prefetch" (the default: the first batch of weights is requested before pdl_wait
// when the previous operation did not use the weight buffers, op_log.h; otherwise "wait").
// Measured on the H100 (DecodeBench, M = 1 and 16, bench/RESULTS.md): prefetch beats wait by
// 2-10% and off by up to 20% on the mid-size shapes.
enum class PdlMode { Off, Wait, Prefetch };
inline PdlMode pdl_mode() {
    static const PdlMode mode = [] {
        const char* v = std::getenv("LOWBIT_PDL");
        if (v != nullptr && std::strcmp(v, "off") == 0) return PdlMode::Off;
        if (v != nullptr && std::strcmp(v, "wait") == 0) return PdlMode::Wait;
        if (v != nullptr && std::strcmp(v, "prefetch") != 0)
            throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                        std::string("LOWBIT_PDL=") + v + " is not one of off, wait, prefetch");
        return PdlMode::Prefetch;
    }();
    return mode;
}

// Whether kernels on a device of compute capability cc_major are launched with the attribute:
// 9.0 or newer and LOWBIT_PDL not "off".
inline bool pdl_launch_allowed(int cc_major) { return cc_major >= 9 && pdl_mode() != PdlMode::Off; }

// The current device's compute capability major.
inline int current_cc_major() {
    int device = 0, major = 0;
    LOWBIT_CUDA_CHECK(cudaGetDevice(&device));
    LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    return major;
}

// The same for the current device.
inline bool pdl_launch_allowed() { return pdl_mode() != PdlMode::Off && pdl_launch_allowed(current_cc_major()); }

// Appends the attribute to cfg, in slot (which cfg.attrs must then hold, after cfg's current
// attributes: cfg.attrs is set to first when it had none).
inline void add_pdl_attribute(cudaLaunchConfig_t& cfg, cudaLaunchAttribute* first) {
    cudaLaunchAttribute& a = first[cfg.numAttrs];
    a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    a.val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = first;
    cfg.numAttrs += 1;
}

// kernel<<<grid, block, 0, stream>>>(args...) in thread block clusters of `cluster` blocks along x
// (none when cluster <= 1; grid.x a multiple of it), with the attribute where pdl_launch_allowed().
// The kernel must call pdl_wait() before it touches memory and pdl_trigger() only after that.
template <class... KernelParams, class... Args>
void launch_clustered_with_pdl(void (*kernel)(KernelParams...), dim3 grid, dim3 block, unsigned cluster,
                               cudaStream_t stream, Args&&... args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.stream = stream;
    cudaLaunchAttribute attrs[2]{};
    if (cluster > 1) {
        attrs[0].id = cudaLaunchAttributeClusterDimension;
        attrs[0].val.clusterDim.x = cluster;
        attrs[0].val.clusterDim.y = 1;
        attrs[0].val.clusterDim.z = 1;
        cfg.attrs = attrs;
        cfg.numAttrs = 1;
    }
    if (pdl_launch_allowed()) add_pdl_attribute(cfg, attrs);
    LOWBIT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// The same without clusters.
template <class... KernelParams, class... Args>
void launch_with_pdl(void (*kernel)(KernelParams...), dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
    launch_clustered_with_pdl(kernel, grid, block, 1u, stream, std::forward<Args>(args)...);
}

}  // namespace cuda
}  // namespace lowbit
