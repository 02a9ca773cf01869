// gemm_simt.cu -- the portable integer GEMM: C[M,N] = A[M,K] * B[N,K]^T with
// exact int32 accumulation and the fused dequantizing epilogue, for every
// shape and stride: odd K, M = 1, N = 1, ld > cols, S4 rows starting mid-word.
//
// The classic shared-memory tiling, with __dp4a (4 x int8 products summed into
// an int32, sm_61+) as the multiply-add:
//
//   block tile   64 (M) x 64 (N), K in steps of 64; 256 threads, 16 x 16
//   thread tile  4 x 4 outputs: rows ty + 16*i, columns tx + 16*j
//   shared       As[k/4][m], Bs[k/4][n]: one 32-bit word = 4 consecutive K
//                values of one row, K-major so that a warp's fragment reads
//                are conflict-free (row stride 66 words: the stores are too)
//
// Global -> shared: each thread fetches whole words (4 K values). S8 operands
// are read as one 32-bit load when the row is 4-byte aligned and the word is
// inside K; S4 operands as one 16-bit load of 4 nibbles, sign-extended to
// int8 in the word (so the inner loop is the same __dp4a for all three operand
// pairs). Everything past M, N or K is zero-filled, which makes the tails exact.
//
// This is the correctness baseline and the fallback; the tuned CUTLASS SM90
// path plugs in beside it in gemm_dispatch.cu.
#include <climits>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "epilogue.cuh"
#include "gemm_simt.cuh"
#include "quant_math.cuh"  // grid_for

namespace lowbit {
namespace cuda {
namespace {

template <bool S4>
simt::Operand<S4> operand(const void* p, int64_t ld, int64_t rows) {
    bool aligned = ld % 4 == 0 && reinterpret_cast<uintptr_t>(p) % 4 == 0;
    return simt::Operand<S4>{static_cast<const unsigned char*>(p), ld, rows, aligned};
}

}  // namespace

void launch_gemm_simt(const GemmArgs& g, const LaunchEnv& env) {
    using simt::kBM;
    using simt::kBN;
    using simt::kThreads;
    const int64_t tiles = (g.m + kBM - 1) / kBM * ((g.n + kBN - 1) / kBN);
    const unsigned blocks = grid_for(tiles, INT_MAX);
    const Epilogue ep = Epilogue::from(g);
    if (g.a_type == LOWBIT_S8 && g.b_type == LOWBIT_S8) {
        simt::gemm_simt_kernel<<<blocks, kThreads, 0, env.stream>>>(operand<false>(g.a, g.lda, g.m),
                                                                    operand<false>(g.b, g.ldb, g.n), g.k, ep);
    } else if (g.a_type == LOWBIT_S8) {  // (S8, S4)
        simt::gemm_simt_kernel<<<blocks, kThreads, 0, env.stream>>>(operand<false>(g.a, g.lda, g.m),
                                                                    operand<true>(g.b, g.ldb, g.n), g.k, ep);
    } else {                             // (S4, S4)
        simt::gemm_simt_kernel<<<blocks, kThreads, 0, env.stream>>>(operand<true>(g.a, g.lda, g.m),
                                                                    operand<true>(g.b, g.ldb, g.n), g.k, ep);
    }
    LOWBIT_CUDA_CHECK_LAUNCH("gemm_simt_kernel");
}

}  // namespace cuda
}  // namespace lowbit
