// gemm_sm80_s4.cu -- the context's side of the native INT4 tensor-core GEMM (LOWBIT_GEMM_SM80_S4,
// the CUTLASS 2.x kernel of sm80/s4_tensorop.cu): when it applies, and how a request runs on it.
//
//   when    A S4 x B S4 on the kernel's alignment rules (sm80/s4_tensorop.h: K, lda, ldb % 32,
//           N % 4, K < 2^25). AUTO picks it on compute capability 8.x (A100, A10/3090, L4/4090),
//           where INT4 MMA is native; never on sm_90 and later, where it is emulated (there the
//           dispatcher's other paths run W4A4). Forced through lowbit_gemm_dequant_config it runs
//           on any compute capability >= 8.0: on an H100 the driver JIT-compiles the kernel's
//           compute_80 PTX (the library carries SASS for sm_80 and sm_89 only), which is how the
//           kernel is tested there; lowbit_gemm_config_binary reports which code was loaded.
//   how     the kernel writes the exact int32 products into a context-owned accumulator
//           (sm80_s4_acc_, dense M' x N int32), then lowbit's epilogue kernel (dequantize.cu,
//           epilogue.cuh) turns them into the output -- the same float32 steps as every other
//           path, so the outputs are the CPU backend's bits. Requests whose M x N x 4 bytes pass
//           kChunkBytes run in row chunks of the accumulator (each chunk: GEMM, then epilogue),
//           so the workspace stays bounded. The accumulator's mutex is held from its size check
//           to the last epilogue launch, so threads sharing the context do not interleave.
//
// Without 80 in LOWBIT_CUDA_ARCHS the kernel is not compiled (LOWBIT_WITH_SM80_S4_GEMM undefined):
// AUTO never picks it and forcing it is LOWBIT_ERR_UNSUPPORTED saying so.
#include <algorithm>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"
#if LOWBIT_WITH_SM80_S4_GEMM
#include "sm80/s4_tensorop.h"
#endif

namespace lowbit {
namespace cuda {
namespace {

#if LOWBIT_WITH_SM80_S4_GEMM
constexpr int64_t kChunkBytes = int64_t(64) << 20;  // accumulator rows per chunk: as many as fit in 64 MiB
constexpr int64_t kMinChunkRows = 128;              // one threadblock tile of M

int64_t out_element_bytes(int out_type) { return out_type == LOWBIT_F16 || out_type == LOWBIT_BF16 ? 2 : 4; }

// Rows of A per launch pair: the whole M when M x N int32 fit kChunkBytes, else a multiple of 128.
int64_t chunk_rows(int64_t m, int64_t n) {
    const int64_t fit = kChunkBytes / (4 * n) / kMinChunkRows * kMinChunkRows;
    return std::min(m, std::max(kMinChunkRows, fit));
}

// The kernel's view of the first `rows` rows of g, writing into acc (dense, ldc = N).
sm80::S4Problem s4_problem(const GemmArgs& g, int64_t rows, int32_t* acc) {
    return sm80::S4Problem{g.a, g.lda, g.b, g.ldb, rows, g.n, g.k, acc, g.n};
}
#endif

}  // namespace

std::string CudaBackend::sm80_s4_refusal(const GemmArgs& g) {
#if LOWBIT_WITH_SM80_S4_GEMM
    if (compute_capability_major() < 8) return "it needs a GPU of compute capability 8.0 or later";
    if (g.a_type != LOWBIT_S4 || g.b_type != LOWBIT_S4) return "it takes S4 activations with S4 weights";
    // The accumulator is dense and 256-byte aligned: its stride and alignment follow from N.
    return sm80::s4_refusal(s4_problem(g, g.m, nullptr));
#else
    (void)g;
    return "this liblowbit was built without it (LOWBIT_CUDA_ARCHS lacks 80)";
#endif
}

bool CudaBackend::sm80_s4_auto(const GemmArgs& g) {
    return g.a_type == LOWBIT_S4 && g.b_type == LOWBIT_S4 && compute_capability_major() == 8 &&
           sm80_s4_refusal(g).empty();
}

void CudaBackend::run_sm80_s4_gemm(const GemmArgs& g) {
    const std::string why = sm80_s4_refusal(g);
    if (!why.empty())
        throw Error(LOWBIT_ERR_UNSUPPORTED,
                    "GEMM configuration LOWBIT_GEMM_SM80_S4 (the native INT4 tensor-core kernel) cannot run this "
                    "request: " + why);
#if LOWBIT_WITH_SM80_S4_GEMM
    const int64_t rows = chunk_rows(g.m, g.n);
    DeviceScratch& acc = sm80_s4_acc_;
    std::lock_guard<std::mutex> lock(acc.mutex);  // held until the last epilogue reading it is enqueued
    acc.reserve(static_cast<size_t>(rows) * static_cast<size_t>(g.n) * 4, size_t(1) << 20,
                "the int32 accumulator of the INT4 tensor-core GEMM");
    int32_t* ws = static_cast<int32_t*>(acc.ptr);
    const int64_t out_bytes = out_element_bytes(g.out_type);
    for (int64_t row0 = 0; row0 < g.m; row0 += rows) {
        const int64_t r = std::min(rows, g.m - row0);
        GemmArgs part = g;
        part.a = static_cast<const uint8_t*>(g.a) + row0 * g.lda / 2;  // lda is even: whole bytes
        sm80::run_s4_gemm(s4_problem(part, r, ws), stream_);
        const bool per_token = g.a_scale_count != 1;
        const DequantArgs d{ws, r, g.n, g.n,
                            g.a_scales == nullptr ? nullptr : g.a_scales + (per_token ? row0 : 0),
                            per_token ? r : 1, g.b_scales, g.b_scale_count, g.bias, g.out_type,
                            static_cast<uint8_t*>(g.out) + row0 * g.ldo * out_bytes, g.ldo};
        launch_dequantize(d, launch_env(kOpNone, g.n));
    }
#endif
}

void CudaBackend::gemm_config_binary(int config, int* ptx_arch, int* sass_arch, int* jit) {
    if (config != LOWBIT_GEMM_SM80_S4)
        throw Error(LOWBIT_ERR_UNSUPPORTED, "lowbit_gemm_config_binary reports on LOWBIT_GEMM_SM80_S4 (-3) only, got " +
                                                std::to_string(config));
#if LOWBIT_WITH_SM80_S4_GEMM
    activate();
    const cudaFuncAttributes a = sm80::s4_kernel_attributes();
    *ptx_arch = a.ptxVersion;
    *sass_arch = a.binaryVersion;
    *jit = a.binaryVersion / 10 != 8 ? 1 : 0;  // the library's SASS for this kernel is sm_80 / sm_89 only
#else
    (void)ptx_arch;
    (void)sass_arch;
    (void)jit;
    throw Error(LOWBIT_ERR_UNSUPPORTED,
                "this liblowbit was built without the sm_80 INT4 tensor-core kernel (LOWBIT_CUDA_ARCHS lacks 80)");
#endif
}

}  // namespace cuda
}  // namespace lowbit
