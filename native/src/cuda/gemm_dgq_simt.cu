// gemm_dgq_simt.cu -- CudaBackend::gemm_dgq: which DGQ A8W4 GEMM runs, and the portable one.
//
//   M <= kStreamMaxM (16), shape on the streaming   the weight-streaming kernel (gemv_stream.cu): the codes
//   kernel's rules (K % 32, ldw % 32, group % 32,   are expanded to INT8 in registers and fed to
//   weights 16-byte aligned), sm_80+                mma.m16n8k32; decode, bound by reading the weights
//   sm_90, F16/BF16 output, K % 16, N % 8,          the codes are expanded to a dense INT8 copy
//   lda % 16, ldo % 8 (any group, any even ldw)     (expand_weights.cu), then the tuned W8A8 kernel
//                                                   (CUTLASS, INT8 wgmma) runs on it with channel_scales
//                                                   as its per-channel b scales (gemm_dispatch.cu)
//   everything else (F32 output, other GPUs,        the portable tiled __dp4a kernel (gemm_simt.cuh), below
//   shapes off those rules)
//
// For the tiled kernel the weight operand is fetched by DgqOperand: 4 consecutive 4-bit codes of
// a row are expanded to INT8 in registers on their way into shared memory,
//   W8 = q * S2            (zero_points == NULL, q a signed INT4 code)
//   W8 = (q - z) * S2      (otherwise, q unsigned 0..15, z the group's INT8 zero point)
// with S2 the group's unsigned integer scale -- integers only, the low 8 bits
// of the product as lowbit.h defines it (weights that pass lowbit_dgq_check
// never wrap). The activations and the epilogue are those of lowbit_gemm_dequant. All three
// paths expand the same way and accumulate exactly in int32, so they give the same bits. An H100
// kernel with the expansion inside the wgmma mainloop (no INT8 copy in memory) is a later step.
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
    if (g.m <= dgq_fused_max_m() && sm90_w4_dgq_refusal(g).empty()) {  // codes expanded in the mainloop
        run_sm90_w4_dgq(g);
        return;
    }
    // The same request as a W4A8 GEMM, for the tuned kernels' dispatch: the epilogue's b scales are
    // the per-channel channel_scales.
    const GemmArgs as_gemm{LOWBIT_S8, g.a, g.lda, LOWBIT_S4, g.w, g.ldw, g.m, g.n, g.k,
                           g.a_scales, g.a_scale_count, g.channel_scales, g.n, g.bias,
                           g.out_type, g.out, g.ldo};
    const int config = tuned_choice(as_gemm);
    if (config != LOWBIT_GEMM_PORTABLE) {
        run_expanded_gemm(PackedWeights{g.w, g.ldw, g.group_scales, g.zero_points, g.group, g.n, g.k}, as_gemm, config);
        return;
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
