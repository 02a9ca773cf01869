// kron_quantize_matmul.h -- the fixed-order FMA matrix product behind lowbit_kron_quantize.
// No other includes: the AVX-512 source includes this header, and nothing
// with external linkage may be compiled for AVX-512 by accident.
#pragma once

namespace lowbit {
namespace cpu {

// out (R x C) = A (R x L) * B (L x C), all dense row-major float32, with
// every output element computed as lowbit.h fixes it:
//     acc = 0; for t = 0 .. L-1: acc = fma(A[i][t], B[t][c], acc)
// so that every implementation gives the same bits. The transform is two
// such products: U = P1^T * X (A = P1 transposed), then Y = U * P2.
using FmaMatmulFn = void (*)(const float* a, const float* b, float* out, int r, int l, int c);

void fma_matmul_scalar(const float* a, const float* b, float* out, int r, int l, int c);
void fma_matmul_avx512(const float* a, const float* b, float* out, int r, int l, int c);

}  // namespace cpu
}  // namespace lowbit
