// gemm_dispatch.cu -- CudaBackend::gemm: which GEMM implementation runs.
//
// Today every request goes to the portable tiled __dp4a kernel (gemm_simt.cu),
// which handles every shape, stride and operand pair. The tuned CUTLASS paths
// slot in here, in front of it, each with its own "can it run this?" test, e.g.
//
//     if (sm90_ && cutlass_sm90_can_implement(g)) return launch_gemm_cutlass_sm90(g, env);
//
// (wgmma needs sm_90a, K-aligned operands and 16-byte aligned rows; anything
// else -- odd K, ld % 16 != 0, tiny M -- keeps falling back to the SIMT kernel).
#include "cuda_backend.h"

namespace lowbit {
namespace cuda {

void CudaBackend::gemm(const GemmArgs& g) {
    activate();
    launch_gemm_simt(g, launch_env(kOpNone, g.n));
}

}  // namespace cuda
}  // namespace lowbit
