// gemm_dispatch.cu -- which GEMM implementation runs a request.
//
//   A S8, B S8 or S4, or A S4, B S4;              the weight-streaming kernel (gemv_stream.cu): decode,
//   M <= kStreamMaxM (16), shape on its rules     bound by reading the weights once (S4 activations are
//                                                 expanded to INT8 as they are staged in shared memory)
//   A S8, B S8, F16/BF16 output, sm_90 device,    a tuned CUTLASS kernel on INT8 wgmma (sm90/), chosen by
//   aligned shape (K % 16, N % 8, lda % 16,       the dispatch table
//   ldb % 16, ldo % 8)
//   A S8, B S4, otherwise as the row above        the S4 weights are expanded to a dense INT8 copy
//   (any even ldb)                                (expand_weights.cu), then the same tuned kernel runs on it
//   A S4, B S4, compute capability 8.x, aligned   the native INT4 tensor-core kernel (LOWBIT_GEMM_SM80_S4,
//   shape (gemm_sm80_s4.cu)                       sm80/s4_tensorop.cu); forced, it also runs on later GPUs
//   A S4, B S4 (W4A4), otherwise as the row       both operands are expanded to dense INT8 copies (one
//   above (any even lda and ldb)                  launch), then the same tuned kernel runs on them
//   everything else                               the portable tiled __dp4a kernel (gemm_simt.cu)
//
// lowbit_gemm_dgq (gemm_dgq_simt.cu) takes the same three steps with its own expansion.
//
// The first and last rows are the "portable" kernels (any sm_80+ GPU): gemm_choice() reports
// both as LOWBIT_GEMM_PORTABLE, and a forced LOWBIT_GEMM_PORTABLE runs the streaming kernel when
// it fits, the tiled one otherwise. The streaming kernel's alignment rules are listed in
// gemv_stream.cu (S8 weights: K % 16, ldb % 16; S4: K % 32, ldb % 32, K < 131072; weights
// 16-byte aligned; S4 activations take S4 weights, any even lda); requests off them run the next
// row that fits, never an error.
//
// Expansion, then the W8A8 kernel: Hopper has no fast INT4 MMA, so 4-bit operands reach the
// tensor cores as INT8. The expanded copies live in context-owned buffers (expanded_weights_,
// grown to the largest N x K seen, and for W4A4 expanded_activations_, grown to the largest M x K
// seen; both freed with the context); their mutexes are held from the expansion to the GEMM's
// launch (activations, then weights, then the GEMM workspace), so two threads sharing the context
// cannot interleave their expansions and GEMMs on the stream. The copies are exact (integers), so
// the outputs keep the CPU backend's bits.
// The fused form -- codes expanded inside the CUTLASS mainloop, with no INT8 copy in memory -- is
// a later step.
//
// The table (gemm_table.h) maps (M bucket, K, N) to a configuration name. It starts as the file
// named by LOWBIT_GEMM_TUNING, or else the table compiled in from native/tuning/sm90_w8a8.txt;
// lowbit_gemm_tuning_load replaces it per context. A shape without an entry gets heuristic(),
// M-bucket rules in the manner of vLLM's sm90 int8 dispatch, fitted to the tuning results. S4
// weights, W4A4 and DGQ use the S8 entry of their shape: after the expansion it is the same GEMM.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "gemv_stream.cuh"
#if LOWBIT_WITH_SM90_GEMM
#include "sm90/w8a8_config.h"
#include "sm90_w8a8_table.h"  // generated: kBuiltinSm90W8a8Table, the text of native/tuning/sm90_w8a8.txt
#endif

namespace lowbit {

#if LOWBIT_WITH_SM90_GEMM
int gemm_config_count() { return cuda::sm90::config_count(); }
const char* gemm_config_name(int config) { return cuda::sm90::config(config).name; }
#else
int gemm_config_count() { return 0; }
const char* gemm_config_name(int) { return nullptr; }
#endif

namespace cuda {
namespace {

#if LOWBIT_WITH_SM90_GEMM
// The configuration for a shape without a table entry, from the tuning of the GEMM issue's 48
// shapes on an H100 (native/tuning/sm90_w8a8.txt, 2026-11-24): the 64x128x256 pingpong tile
// wins every M <= 64 cell (the weight-streaming regime) and M = 256 when N <= 4096; the 128x128
// pingpong tile wins M = 256 otherwise and M <= 1024 when N <= 16384 and K <= 4096; the 128x256
// cooperative tile (cluster 2x1) wins most larger cells, the 256x128 tile the rest by <= 10%.
// Stream-K won no cell of those shapes: the heuristic does not pick it, the tuner may.
int heuristic(int64_t m, int64_t n, int64_t k) {
    using namespace sm90;
    static const int pp64 = config_index("pp_64x128x256_c1x1"), pp128 = config_index("pp_128x128x128_c2x1"),
                     coop = config_index("coop_128x256x128_c2x1");
    if (m <= 64 || (m <= 256 && n <= 4096)) return pp64;
    if (m <= 256 || (m <= 1024 && n > 4096 && n <= 16384 && k <= 4096)) return pp128;
    return coop;
}
#endif

// The streaming kernel's view of a lowbit_gemm_s32 / lowbit_gemm_dequant request, when it has one
// (A S8 with B S8 or S4; A S4 with B S4).
bool as_stream_problem(const GemmArgs& g, StreamProblem& p) {
    const bool s8_acts = g.a_type == LOWBIT_S8 && (g.b_type == LOWBIT_S8 || g.b_type == LOWBIT_S4);
    const bool s4_acts = g.a_type == LOWBIT_S4 && g.b_type == LOWBIT_S4;
    if (!s8_acts && !s4_acts) return false;
    p = StreamProblem{g.b_type == LOWBIT_S8 ? StreamFormat::S8 : StreamFormat::S4,
                      static_cast<const int8_t*>(g.a), g.lda, static_cast<const uint8_t*>(g.b), g.ldb,
                      nullptr, nullptr, 0, g.m, g.n, g.k, Epilogue::from(g), s4_acts};
    return true;
}

// Row length (bytes) of the expanded INT8 operands: K rounded up to the tuned kernels' 16-byte
// alignment of K, lda and ldb, the padding zero. The tuned path needs K % 16 == 0 for S8
// activations anyway (they are not copied), so today this is K; the padding is what a K-padding
// of A would pair with.
int64_t expanded_ld(int64_t k) { return (k + 15) / 16 * 16; }

}  // namespace

int CudaBackend::compute_capability_major() {
    int major = cc_major_.load(std::memory_order_relaxed);
    if (major < 0) {
        LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_));
        cc_major_.store(major, std::memory_order_relaxed);
    }
    return major;
}

bool CudaBackend::stream_gemm_fits(const StreamProblem& p) {
    return *stream_refusal(p, compute_capability_major()) == '\0';
}

void CudaBackend::run_stream_gemm(const StreamProblem& p) {
    const size_t need = stream_workspace_bytes(p, sm_count_, compute_capability_major());
    DeviceScratch& ws = stream_scratch_;
    std::lock_guard<std::mutex> lock(ws.mutex);
    if (ws.reserve(need, size_t(1) << 20, "the split-K workspace of the streaming GEMM"))
        LOWBIT_CUDA_CHECK(cudaMemsetAsync(ws.ptr, 0, ws.bytes, stream_));  // ordered before every launch that uses it
    StreamProblem q = p;
    const void* early[3];
    stream_early_buffers(p, early);
    q.weights_early = std::none_of(early, early + 3, [&](const void* b) { return op_log.used_by_previous(b); });
    launch_gemv_stream(q, ws.ptr, launch_env(kOpNone, p.n), compute_capability_major());
}

std::shared_ptr<const GemmTable> CudaBackend::default_gemm_table() {
#if LOWBIT_WITH_SM90_GEMM
    const char* path = std::getenv("LOWBIT_GEMM_TUNING");
    if (path != nullptr && *path != '\0') {
        std::ifstream in(path);
        if (!in)
            throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                        std::string("LOWBIT_GEMM_TUNING names ") + path + ", which cannot be read");
        std::ostringstream text;
        text << in.rdbuf();
        return std::make_shared<const GemmTable>(GemmTable::parse(text.str(), path));
    }
    static const std::shared_ptr<const GemmTable> builtin =
        std::make_shared<const GemmTable>(GemmTable::parse(kBuiltinSm90W8a8Table, "native/tuning/sm90_w8a8.txt"));
    return builtin;
#else
    return std::make_shared<const GemmTable>();
#endif
}

void CudaBackend::set_gemm_table(const GemmTable& table) {
    auto t = std::make_shared<const GemmTable>(table);
    std::lock_guard<std::mutex> lock(table_mutex_);
    table_ = std::move(t);
}

std::string CudaBackend::tuned_gemm_refusal(const GemmArgs& g, int config) const {
#if LOWBIT_WITH_SM90_GEMM
    (void)config;
    if (!sm90_) return "the tuned kernels need a compute capability 9.0 GPU (H100/H200)";
    if (!(g.a_type == LOWBIT_S8 && (g.b_type == LOWBIT_S8 || g.b_type == LOWBIT_S4)) &&
        !(g.a_type == LOWBIT_S4 && g.b_type == LOWBIT_S4))
        return "the tuned kernels take S8 activations with S8 or S4 weights, or S4 activations with S4 weights "
               "(4-bit operands expanded to S8 first)";
    if (g.out_type != LOWBIT_F16 && g.out_type != LOWBIT_BF16) return "the tuned kernels write F16 or BF16";
    if (g.m > INT32_MAX || g.n > INT32_MAX || g.k > INT32_MAX) return "the tuned kernels take M, N, K below 2^31";
    std::ostringstream s;
    if (g.k % 16 != 0) s << "K=" << g.k << " is not a multiple of 16";
    else if (g.n % 8 != 0) s << "N=" << g.n << " is not a multiple of 8";
    // S4 operands are read through their expanded copies, whose rows are dense and aligned.
    else if (g.a_type == LOWBIT_S8 && g.lda % 16 != 0) s << "lda=" << g.lda << " is not a multiple of 16";
    else if (g.b_type == LOWBIT_S8 && g.ldb % 16 != 0) s << "ldb=" << g.ldb << " is not a multiple of 16";
    else if (g.ldo % 8 != 0) s << "ldo=" << g.ldo << " is not a multiple of 8";
    return s.str();
#else
    (void)g;
    (void)config;
    return "this liblowbit was built without sm_90a kernels (LOWBIT_CUDA_ARCHS lacks 90a)";
#endif
}

int CudaBackend::gemm_choice(const GemmArgs& g) {
    if (sm80_s4_auto(g)) return LOWBIT_GEMM_SM80_S4;  // W4A4 on compute capability 8.x: gemm_sm80_s4.cu
    StreamProblem sp;
    if (g.m <= kStreamMaxM && as_stream_problem(g, sp) && stream_gemm_fits(sp)) return LOWBIT_GEMM_PORTABLE;
    if (sm90_w4_refusal(g).empty()) return LOWBIT_GEMM_SM90_W4;  // 4-bit weights: gemm_sm90_w4.cu
    return tuned_choice(g);
}

int CudaBackend::tuned_choice(const GemmArgs& g) {
#if LOWBIT_WITH_SM90_GEMM
    if (!tuned_gemm_refusal(g, 0).empty()) return LOWBIT_GEMM_PORTABLE;
    std::shared_ptr<const GemmTable> table;
    {
        std::lock_guard<std::mutex> lock(table_mutex_);
        table = table_;
    }
    if (const std::string* name = table->lookup(g.m, g.k, g.n)) {
        const int i = sm90::config_index(name->c_str());
        if (i >= 0) return i;
    }
    return heuristic(g.m, g.n, g.k);
#else
    (void)g;
    return LOWBIT_GEMM_PORTABLE;
#endif
}

void CudaBackend::gemm(const GemmArgs& g) { gemm_config(g, LOWBIT_GEMM_AUTO); }

void CudaBackend::gemm_config(const GemmArgs& g, int config) {
    activate();
    if (config == LOWBIT_GEMM_AUTO) config = gemm_choice(g);
    if (config == LOWBIT_GEMM_SM80_S4) {  // the native INT4 tensor-core kernel: gemm_sm80_s4.cu
        run_sm80_s4_gemm(g);
        return;
    }
    if (config == LOWBIT_GEMM_SM90_W4) {  // the fused 4-bit-weight kernel: gemm_sm90_w4.cu
        run_sm90_w4_gemm(g);
        return;
    }
    if (config == LOWBIT_GEMM_PORTABLE) {
        StreamProblem sp;
        if (g.m <= kStreamMaxM && as_stream_problem(g, sp) && stream_gemm_fits(sp))
            run_stream_gemm(sp);
        else
            launch_gemm_simt(g, launch_env(kOpNone, g.n));
        return;
    }
    const std::string why = tuned_gemm_refusal(g, config);
    if (!why.empty())
        throw Error(LOWBIT_ERR_UNSUPPORTED, std::string("GEMM configuration ") + gemm_config_name(config) +
                                                " cannot run this request: " + why);
    if (g.a_type == LOWBIT_S4)
        run_expanded_w4a4_gemm(g, config);
    else if (g.b_type == LOWBIT_S4)
        run_expanded_gemm(PackedWeights{static_cast<const uint8_t*>(g.b), g.ldb, nullptr, nullptr, 0, g.n, g.k}, g,
                          config);
    else
        run_tuned_gemm(g, config);
}

void CudaBackend::run_expanded_gemm(const PackedWeights& w, const GemmArgs& g, int config) {
    const int64_t ld = expanded_ld(g.k);
    DeviceScratch& copy = expanded_weights_;
    std::lock_guard<std::mutex> lock(copy.mutex);  // held until the GEMM reading the copy is enqueued
    copy.reserve(static_cast<size_t>(g.n) * static_cast<size_t>(ld), size_t(1) << 20,
                 "the INT8 copy of the 4-bit weights (N x K bytes)");
    launch_expand_weights(w, static_cast<int8_t*>(copy.ptr), ld, launch_env(kOpNone, g.n));
    GemmArgs s8 = g;
    s8.b_type = LOWBIT_S8;
    s8.b = copy.ptr;
    s8.ldb = ld;
    run_tuned_gemm(s8, config);
}

void CudaBackend::run_expanded_w4a4_gemm(const GemmArgs& g, int config) {
    const int64_t ld = expanded_ld(g.k);
    DeviceScratch& acts = expanded_activations_;
    DeviceScratch& weights = expanded_weights_;
    std::scoped_lock lock(acts.mutex, weights.mutex);  // held until the GEMM reading the copies is enqueued
    acts.reserve(static_cast<size_t>(g.m) * static_cast<size_t>(ld), size_t(1) << 20,
                 "the INT8 copy of the 4-bit activations (M x K bytes)");
    weights.reserve(static_cast<size_t>(g.n) * static_cast<size_t>(ld), size_t(1) << 20,
                    "the INT8 copy of the 4-bit weights (N x K bytes)");
    const ExpandJob a{PackedWeights{static_cast<const uint8_t*>(g.a), g.lda, nullptr, nullptr, 0, g.m, g.k},
                      static_cast<int8_t*>(acts.ptr), ld};
    const ExpandJob b{PackedWeights{static_cast<const uint8_t*>(g.b), g.ldb, nullptr, nullptr, 0, g.n, g.k},
                      static_cast<int8_t*>(weights.ptr), ld};
    launch_expand_pair(a, b, launch_env(kOpNone, g.n));
    GemmArgs s8 = g;
    s8.a_type = LOWBIT_S8;
    s8.a = acts.ptr;
    s8.lda = ld;
    s8.b_type = LOWBIT_S8;
    s8.b = weights.ptr;
    s8.ldb = ld;
    run_tuned_gemm(s8, config);
}

void CudaBackend::run_tuned_gemm(const GemmArgs& g, int config) {
#if LOWBIT_WITH_SM90_GEMM
    const sm90::W8A8Config& c = sm90::config(config);
    const sm90::W8A8Ops& ops = g.out_type == LOWBIT_F16 ? c.f16 : c.bf16;
    const sm90::W8A8Problem p{g.a, g.lda, g.b, g.ldb, g.m, g.n, g.k, g.a_scales, g.a_scale_count,
                              g.b_scales, g.b_scale_count, g.bias, g.out, g.ldo, device_, sm_count_};
    const size_t need = ops.workspace_bytes(p);
    DeviceScratch& ws = tuned_workspace_;
    std::lock_guard<std::mutex> lock(ws.mutex);
    ws.reserve(need, size_t(1) << 20, "the GEMM workspace");
    ops.run(p, ws.ptr, stream_, c.name);
#else
    (void)g;
    (void)config;
    throw Error(LOWBIT_ERR_UNSUPPORTED, "this liblowbit was built without sm_90a kernels");
#endif
}

}  // namespace cuda
}  // namespace lowbit
