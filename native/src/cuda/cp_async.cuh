// cp_async.cuh -- asynchronous global -> shared copies (cp.async, sm_80 and up) of 16 bytes, their
// commit groups and waits, for the kernels that stage rows in shared memory (the Kronecker HALF
// kernels, the staged flatten). "memory" clobbers: the compiler must not move shared-memory
// accesses across a copy's issue or a wait.
#pragma once

#include <cuda_runtime.h>

namespace lowbit {
namespace cuda {

// The shared-memory address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// 16 bytes from gmem to smem.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem) : "memory");
}

// 16 bytes to shared address dst, of which src_bytes (0..16) are read from src and the rest is
// zero-filled: nothing past src + src_bytes is read.
__device__ __forceinline__ void cp_async16_zfill(unsigned dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

}  // namespace cuda
}  // namespace lowbit
