// gemm_sm90_w4.cu -- the context's side of the fused 4-bit-weight GEMM on Hopper
// (LOWBIT_GEMM_SM90_W4, the CUTLASS mixed-input kernels of sm90/w4_*.cu): when it applies, which
// configuration runs, and how a request reaches it.
//
//   what    W4A8 (S8 activations x S4 weights), DGQ A8W4 (lowbit_gemm_dgq) and W4A4 (S4 x S4): the
//           4-bit weight codes are loaded by TMA as codes and expanded to INT8 in registers inside
//           the wgmma mainloop (sm90/w4_kernel.cuh), so no INT8 copy of the weights is written.
//           W4A4's activations (M x K, small beside the weights at the M where this kernel runs)
//           are expanded to INT8 first (expand_weights.cu), into expanded_activations_.
//   DGQ     the mainloop reads the group terms per (group, channel) in column-major order, as
//           32-bit lanes: S2 and, with zero points, (-z * S2) mod 2^32. A small kernel here writes
//           them from lowbit's row-major U8 scales and S8 zero points into group_terms_
//           (8 x N x K / group bytes, 1/16 of the codes' bytes at group 128) per call. The
//           scale costs CUTLASS's mainloop a widen + multiply + narrow per weight (and the scale
//           fragments a shared-memory load per k-block), so DGQ in the mainloop is slower than W4A8
//           there: it wins while the weights' read dominates (small M) and loses to the expansion
//           path once the GEMM is compute bound. lowbit_gemm_dgq runs it up to M = kDgqFusedMaxM
//           (measured, bench/RESULTS.md); LOWBIT_DGQ_FUSED_MAX_M=<m> moves that bound (0: never).
//   when    an sm_90 device, F16 or BF16 output, K % 32 == 0, ldw % 32 == 0 (16-byte aligned code
//           rows for TMA), N % 8 == 0, lda % 16 == 0 (S8 activations), ldo % 8 == 0, M, N, K below
//           2^31; DGQ also group a multiple of 128 (the tile's K) or group == K.
//           AUTO picks it for M > kStreamMaxM (the streaming kernel owns decode) when it can run.
//   which   w4_config_for(): by M, from the H100 tuning recorded in bench/RESULTS.md; the
//           environment variable LOWBIT_W4_CONFIG=<name> forces one (for the benchmarks).
//
// Numerics: integers until the epilogue, exact int32 accumulation, the epilogue's float32 steps
// without FMA: the bits equal the CPU backend's (lowbit.h), as on every other path.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"
#if LOWBIT_WITH_SM90_GEMM
#include "sm90/w4_config.h"
#endif

namespace lowbit {
namespace cuda {

// DGQ runs the fused kernel up to this M, the expansion path above it (see "DGQ" above).
constexpr int64_t kDgqFusedMaxM = 512;

namespace {

#if LOWBIT_WITH_SM90_GEMM
constexpr int kTermThreads = 256;

// Group terms, transposed: for group g of channel j (row-major slot j * groups + g),
//   scales[g * n + j] = S2,  offsets[g * n + j] = (-z * S2) mod 2^32 (with zero points).
// One thread per output lane, consecutive threads along j (coalesced writes; the reads are
// strided but touch only N x groups bytes, 1/64 of the codes at group 128).
__global__ void __launch_bounds__(kTermThreads)
    dgq_group_terms_kernel(const uint8_t* __restrict__ s2, const int8_t* __restrict__ z, int64_t n, int64_t groups,
                           uint32_t* __restrict__ scales, uint32_t* __restrict__ offsets) {
    const int64_t total = n * groups;
    for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
        const int64_t g = t / n, j = t - g * n;
        const int64_t slot = j * groups + g;
        const uint32_t s = s2[slot];
        scales[t] = s;
        if (z != nullptr) offsets[t] = 0u - static_cast<uint32_t>(static_cast<int32_t>(z[slot])) * s;
    }
}

// The configuration for M tokens, N channels and a format, from the H100 tile sweep in
// bench/RESULTS.md (W4GemmBench with each configuration forced, M = 64 .. 8192): the largest tile
// that still gives >= kMinTiles tiles (132 SMs) wins. The 128 x 256 tile with a 2 x 1 cluster
// (the channel pair shares each activation tile through TMA multicast) from M = 129 on, the
// 128 x 128 tile, then the 64-channel pingpong tile, which small-M requests on N <= 8192 need
// to spread the weights' read over the SMs. (A 128 x 256 tile without the cluster was 1-6% slower
// at M >= 2048 and even below; it was dropped.) LOWBIT_W4_CONFIG=<name> forces one where it
// has the format.
constexpr int64_t kMinTiles = 100;

int64_t tiles(int64_t m, int64_t n, int64_t tile_channels, int64_t tile_tokens) {
    return (n + tile_channels - 1) / tile_channels * ((m + tile_tokens - 1) / tile_tokens);
}

const sm90::W4Config& w4_config_for(int64_t m, int64_t n, sm90::W4Format format) {
    static const int forced = [] {
        const char* name = std::getenv("LOWBIT_W4_CONFIG");
        return name != nullptr && *name != '\0' ? sm90::w4_config_index(name) : -1;
    }();
    const int f = static_cast<int>(format);
    if (forced >= 0 && sm90::w4_config(forced).ops[f][0].run != nullptr) return sm90::w4_config(forced);
    static const int wide = sm90::w4_config_index("w4_coop_128x256x128_c2x1"),
                     square = sm90::w4_config_index("w4_coop_128x128x128_c1x1"),
                     thin = sm90::w4_config_index("w4_pp_64x128x128_c1x1");
    const int pick = m > 128 && tiles(m, n, 128, 256) >= kMinTiles ? wide
                     : tiles(m, n, 128, 128) >= kMinTiles          ? square
                                                                    : thin;
    if (sm90::w4_config(pick).ops[f][0].run != nullptr) return sm90::w4_config(pick);
    return sm90::w4_config(square);
}

std::string shape_refusal(int64_t m, int64_t n, int64_t k, int64_t ldw, int64_t lda, bool s8_acts, int out_type,
                          int64_t ldo) {
    std::ostringstream s;
    if (out_type != LOWBIT_F16 && out_type != LOWBIT_BF16) s << "it writes F16 or BF16";
    else if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) s << "it takes M, N, K below 2^31";
    else if (k % 32 != 0) s << "K=" << k << " is not a multiple of 32";
    else if (ldw % 32 != 0) s << "the weights' ld=" << ldw << " is not a multiple of 32";
    else if (n % 8 != 0) s << "N=" << n << " is not a multiple of 8";
    else if (s8_acts && lda % 16 != 0) s << "lda=" << lda << " is not a multiple of 16";
    else if (ldo % 8 != 0) s << "ldo=" << ldo << " is not a multiple of 8";
    return s.str();
}
#endif

}  // namespace

int64_t dgq_fused_max_m() {
    static const int64_t max_m = [] {
        const char* v = std::getenv("LOWBIT_DGQ_FUSED_MAX_M");
        return v != nullptr && *v != '\0' ? std::strtoll(v, nullptr, 10) : kDgqFusedMaxM;
    }();
    return max_m;
}

std::string CudaBackend::sm90_w4_refusal(const GemmArgs& g) const {
#if LOWBIT_WITH_SM90_GEMM
    if (!sm90_) return "it needs a compute capability 9.0 GPU (H100/H200)";
    if (g.b_type != LOWBIT_S4 || (g.a_type != LOWBIT_S8 && g.a_type != LOWBIT_S4))
        return "it takes S4 weights with S8 or S4 activations";
    return shape_refusal(g.m, g.n, g.k, g.ldb, g.lda, g.a_type == LOWBIT_S8, g.out_type, g.ldo);
#else
    (void)g;
    return "this liblowbit was built without sm_90a kernels (LOWBIT_CUDA_ARCHS lacks 90a)";
#endif
}

std::string CudaBackend::sm90_w4_dgq_refusal(const DgqGemmArgs& g) const {
#if LOWBIT_WITH_SM90_GEMM
    if (!sm90_) return "it needs a compute capability 9.0 GPU (H100/H200)";
    std::string why = shape_refusal(g.m, g.n, g.k, g.ldw, g.lda, true, g.out_type, g.ldo);
    if (!why.empty()) return why;
    const int tile_k =
        w4_config_for(g.m, g.n, g.zero_points != nullptr ? sm90::W4Format::DgqZero : sm90::W4Format::DgqSigned).tile_k;
    if (g.group != g.k && g.group % tile_k != 0)
        return "group=" + std::to_string(g.group) + " is not a multiple of " + std::to_string(tile_k);
    return "";
#else
    (void)g;
    return "this liblowbit was built without sm_90a kernels (LOWBIT_CUDA_ARCHS lacks 90a)";
#endif
}

#if LOWBIT_WITH_SM90_GEMM
namespace {

// Runs p on the configuration for its M with `format`; refuses (UNSUPPORTED) what CUTLASS refuses.
void run_w4(const sm90::W4Problem& p, sm90::W4Format format, int out_type, DeviceScratch& ws, cudaStream_t stream) {
    const sm90::W4Config& c = w4_config_for(p.m, p.n, format);
    const sm90::W4Ops& ops = c.ops[static_cast<int>(format)][out_type == LOWBIT_F16 ? 0 : 1];
    if (!ops.can_implement(p))
        throw Error(LOWBIT_ERR_UNSUPPORTED, std::string("the fused 4-bit GEMM ") + c.name +
                                                " cannot run this request (CUTLASS can_implement refused it)");
    std::lock_guard<std::mutex> lock(ws.mutex);
    ws.reserve(ops.workspace_bytes(p), size_t(1) << 20, "the GEMM workspace");
    ops.run(p, ws.ptr, stream, c.name);
}

}  // namespace
#endif

void CudaBackend::run_sm90_w4_gemm(const GemmArgs& g) {
    const std::string why = sm90_w4_refusal(g);
    if (!why.empty())
        throw Error(LOWBIT_ERR_UNSUPPORTED,
                    "GEMM configuration LOWBIT_GEMM_SM90_W4 (the fused 4-bit-weight kernel) cannot run this request: " +
                        why);
#if LOWBIT_WITH_SM90_GEMM
    sm90::W4Problem p{g.b, g.ldb, g.a, g.lda, g.m, g.n, g.k, nullptr, nullptr, 0,
                      g.a_scales, g.a_scale_count, g.b_scales, g.b_scale_count, g.bias, g.out, g.ldo,
                      device_, sm_count_};
    if (g.a_type == LOWBIT_S8) {
        run_w4(p, sm90::W4Format::S4, g.out_type, tuned_workspace_, stream_);
        return;
    }
    // W4A4: the activations to INT8 first (M x K bytes), then the same kernel.
    const int64_t ld = (g.k + 15) / 16 * 16;
    DeviceScratch& acts = expanded_activations_;
    std::lock_guard<std::mutex> lock(acts.mutex);  // held until the GEMM reading the copy is enqueued
    acts.reserve(static_cast<size_t>(g.m) * static_cast<size_t>(ld), size_t(1) << 20,
                 "the INT8 copy of the 4-bit activations (M x K bytes)");
    launch_expand_weights(PackedWeights{static_cast<const uint8_t*>(g.a), g.lda, nullptr, nullptr, 0, g.m, g.k},
                          static_cast<int8_t*>(acts.ptr), ld, launch_env(kOpNone, g.m));
    p.a = acts.ptr;
    p.lda = ld;
    run_w4(p, sm90::W4Format::S4, g.out_type, tuned_workspace_, stream_);
#endif
}

void CudaBackend::run_sm90_w4_dgq(const DgqGemmArgs& g) {
    const std::string why = sm90_w4_dgq_refusal(g);
    if (!why.empty())
        throw Error(LOWBIT_ERR_UNSUPPORTED, "the fused DGQ GEMM cannot run this request: " + why);
#if LOWBIT_WITH_SM90_GEMM
    const int64_t groups = g.k / g.group;
    const size_t plane = static_cast<size_t>(g.n) * static_cast<size_t>(groups);
    DeviceScratch& terms = group_terms_;
    std::lock_guard<std::mutex> lock(terms.mutex);  // held until the GEMM reading the terms is enqueued
    terms.reserve(2 * plane * sizeof(uint32_t), size_t(1) << 16, "the DGQ group terms (8 x N x K / group bytes)");
    uint32_t* scales = static_cast<uint32_t*>(terms.ptr);
    uint32_t* offsets = scales + plane;
    const LaunchEnv env = launch_env(kOpNone, g.n);
    const int64_t blocks = std::min<int64_t>((static_cast<int64_t>(plane) + kTermThreads - 1) / kTermThreads,
                                             int64_t(env.sm_count) * 8);
    dgq_group_terms_kernel<<<static_cast<unsigned>(blocks), kTermThreads, 0, env.stream>>>(
        g.group_scales, g.zero_points, g.n, groups, scales, offsets);
    LOWBIT_CUDA_CHECK_LAUNCH("dgq_group_terms_kernel");
    const sm90::W4Problem p{g.w, g.ldw, g.a, g.lda, g.m, g.n, g.k, scales,
                            g.zero_points != nullptr ? offsets : nullptr, g.group,
                            g.a_scales, g.a_scale_count, g.channel_scales, g.n, g.bias, g.out, g.ldo,
                            device_, sm_count_};
    run_w4(p, g.zero_points != nullptr ? sm90::W4Format::DgqZero : sm90::W4Format::DgqSigned, g.out_type,
           tuned_workspace_, stream_);
#endif
}

}  // namespace cuda
}  // namespace lowbit
