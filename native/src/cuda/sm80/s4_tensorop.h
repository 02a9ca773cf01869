// s4_tensorop.h -- the native INT4 tensor-core GEMM (s4_tensorop.cu) as the dispatcher sees it.
// Host code only: CUTLASS stays inside s4_tensorop.cu, which is compiled in its own object library
// for sm_80 and sm_89 SASS plus compute_80 PTX (cmake/LowbitCuda.cmake), and only when
// LOWBIT_CUDA_ARCHS has 80 (LOWBIT_WITH_SM80_S4_GEMM is then defined for the library).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace lowbit {
namespace cuda {
namespace sm80 {

// acc[M,N] (int32, row-major, ldc) = A[M,K] * B[N,K]^T, A and B packed S4 (lowbit.h's nibble
// order, which is cutlass::int4b_t's), both K-contiguous: CUTLASS's "TN" with B column-major.
struct S4Problem {
    const void* a;  // row i at byte i * lda / 2
    int64_t lda;    // elements (nibbles)
    const void* b;  // row j at byte j * ldb / 2
    int64_t ldb;    // elements (nibbles)
    int64_t m, n, k;
    int32_t* c;     // the accumulator
    int64_t ldc;    // elements
};

// Why the kernel cannot run p exactly ("" when it can): 16-byte vector loads of 32 nibbles need
// K % 32 == 0, lda % 32 == 0, ldb % 32 == 0 and 16-byte aligned A and B; 4-element int32 stores
// need N % 4 == 0, ldc % 4 == 0 and a 16-byte aligned C; K < 2^25 keeps |acc| < 2^31, so the
// MMA's saturating accumulation (.satfinite) never saturates and the sums are exact; N at most
// 65535 tiles of 128 (the grid's y extent). Null pointers count as aligned (shape queries).
std::string s4_refusal(const S4Problem& p);

// Enqueues the GEMM on stream (s4_refusal(p) must be ""). Throws lowbit::Error on launch failure.
void run_s4_gemm(const S4Problem& p, cudaStream_t stream);

// The kernel's attributes on the current device: cudaFuncGetAttributes, which loads the kernel
// (and has the driver JIT-compile its compute_80 PTX on a GPU without matching SASS).
cudaFuncAttributes s4_kernel_attributes();

}  // namespace sm80
}  // namespace cuda
}  // namespace lowbit
