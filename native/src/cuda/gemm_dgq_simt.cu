// gemm_dgq_simt.cu -- CudaBackend::gemm_dgq: the DGQ A8W4 GEMM on any CUDA GPU.
//
//   M <= kStreamMaxM (16), shape on the streaming   the weight-streaming kernel (gemv_stream.cu): the codes
//   kernel's rules (K % 32, ldw % 32, group % 32,   are expanded to INT8 in registers and fed to
//   weights 16-byte aligned), sm_80+                mma.m16n8k32; decode, bound by reading the weights
//   everything else                                 the portable tiled __dp4a kernel (gemm_simt.cuh), below
//
// For the tiled kernel the weight operand is fetched by DgqOperand: 4 consecutive 4-bit codes of
// a row are expanded to INT8 in registers on their way into shared memory,
//   W8 = q * S2            (zero_points == NULL, q a signed INT4 code)
//   W8 = (q - z) * S2      (otherwise, q unsigned 0..15, z the group's INT8 zero point)
// with S2 the group's unsigned integer scale -- integers only, the low 8 bits
// of the product as lowbit.h defines it (weights that pass lowbit_dgq_check
// never wrap). Both kernels expand the same way and accumulate exactly in int32, so their
// outputs are the same bits. The activations and the epilogue are those of lowbit_gemm_dequant.
// The H100 kernel with the expansion inside a wgmma mainloop (large M) is a later step.
#include <climits>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "gemm_simt.cuh"
#include "gemv_stream.cuh"
#include "quant_math.cuh"  // grid_for

namespace lowbit {
namespace cuda {
namespace {

struct DgqOperand {
    const unsigned char* w;    // packed codes, row j at byte j * ldw / 2
    int64_t ldw;               // elements (nibbles), even
    int64_t rows;              // N
    const uint8_t* s2;         // rows x groups
    const int8_t* z;           // rows x groups, or null (signed codes)
    int64_t group;
    int64_t groups;            // K / group

    __device__ __forceinline__ int load_k4(int64_t row, int64_t k0, int64_t K) const {
        const unsigned char* p = w + row * (ldw / 2) + k0 / 2;  // k0 is a multiple of 4: byte-aligned
        unsigned nib = p[0];
        if (k0 + 2 < K) nib |= static_cast<unsigned>(p[1]) << 8;
        unsigned out = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t k = k0 + i;
            if (k >= K) break;
            const int64_t slot = row * groups + k / group;
            const int code = static_cast<int>((nib >> (4 * i)) & 0xFu);
            const int q = z != nullptr ? code - z[slot] : (code ^ 8) - 8;
            const int v = q * static_cast<int>(s2[slot]);
            out |= (static_cast<unsigned>(v) & 0xffu) << (8 * i);
        }
        return static_cast<int>(out);
    }
};

}  // namespace

void CudaBackend::gemm_dgq(const DgqGemmArgs& g) {
    activate();
    const Epilogue ep{g.a_scales, g.a_scale_count, g.channel_scales, g.n, g.bias, g.out_type, g.out, g.ldo};
    if (g.m <= kStreamMaxM) {
        const StreamProblem sp{StreamFormat::Dgq, g.a, g.lda, g.w, g.ldw, g.group_scales, g.zero_points, g.group,
                               g.m, g.n, g.k, ep};
        if (stream_gemm_fits(sp)) {
            run_stream_gemm(sp);
            return;
        }
    }
    const LaunchEnv env = launch_env(kOpNone, g.n);
    using simt::kBM;
    using simt::kBN;
    const simt::Operand<false> a{reinterpret_cast<const unsigned char*>(g.a), g.lda, g.m,
                                 g.lda % 4 == 0 && reinterpret_cast<uintptr_t>(g.a) % 4 == 0};
    const DgqOperand b{g.w, g.ldw, g.n, g.group_scales, g.zero_points, g.group, g.k / g.group};
    const int64_t tiles = (g.m + kBM - 1) / kBM * ((g.n + kBN - 1) / kBN);
    simt::gemm_simt_kernel<<<grid_for(tiles, INT_MAX), simt::kThreads, 0, env.stream>>>(a, b, g.k, ep);
    LOWBIT_CUDA_CHECK_LAUNCH("gemm_simt_kernel (DGQ)");
}

}  // namespace cuda
}  // namespace lowbit
