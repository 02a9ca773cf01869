// cublas_gemm.cu -- CudaBackend::dense_gemm: float GEMMs through cuBLAS, without cuBLAS at build
// time. Two users: the benchmarks' same-run FP16/BF16 baseline, and the calibration engine's FP32
// products when it runs on a GPU.
//
// libcublas.so.13 is opened with dlopen at the first call (the dynamic linker's path first, then
// $CUDA_HOME/lib64 and /usr/local/cuda/lib64; libcublasLt.so.13 from the same directory first,
// RTLD_GLOBAL, so libcublas finds it) and the five functions used are declared here with cuBLAS's
// documented C prototypes and enum values (cublas_api.h, CUDA 13.0). One handle per context,
// bound to the context's stream.
//
// The product: cuBLAS is column-major, lowbit row-major. A row-major X [r][c] read column-major is
// X' (c x r, ld c), and row-major out = a * op(b) is, transposed, out' = op(b)' * a'. So:
//   b N x K (LOWBIT_B_NK): cublasGemmEx(OP_T, OP_N, N, M, K, b, ld K, a, ld K, out, ld N)
//                          -- the "TN" layout torch's fp16 nn.Linear uses;
//   b K x N (LOWBIT_B_KN): cublasGemmEx(OP_N, OP_N, N, M, K, b, ld N, a, ld K, out, ld N).
// Compute type CUBLAS_COMPUTE_32F for every operand type: FP32 products and sums, and no TF32 for
// F32 operands (that would need CUBLAS_COMPUTE_32F_FAST_TF32 or the TF32 math mode, neither set).
#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_backend.h"
#include "cuda_check.h"

namespace lowbit {
namespace cuda {
namespace {

using cublasHandle = void*;
using CreateFn = int (*)(cublasHandle*);
using DestroyFn = int (*)(cublasHandle);
using SetStreamFn = int (*)(cublasHandle, cudaStream_t);
using GemmExFn = int (*)(cublasHandle, int transa, int transb, int m, int n, int k, const void* alpha, const void* A,
                         int Atype, int lda, const void* B, int Btype, int ldb, const void* beta, void* C, int Ctype,
                         int ldc, int computeType, int algo);
using StatusStringFn = const char* (*)(int);

constexpr int kOpN = 0, kOpT = 1;               // cublasOperation_t
constexpr int kR32F = 0, kR16F = 2, kR16BF = 14;  // cudaDataType_t CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF
constexpr int kCompute32F = 68;                 // cublasComputeType_t CUBLAS_COMPUTE_32F
constexpr int kGemmDefault = -1;                // cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT

// The loaded library, once per process (never unloaded).
struct Library {
    void* lib = nullptr;
    CreateFn create = nullptr;
    DestroyFn destroy = nullptr;
    SetStreamFn set_stream = nullptr;
    GemmExFn gemm_ex = nullptr;
    StatusStringFn status_string = nullptr;
    std::string error;  // why it could not be loaded

    Library() {
        std::string tried;
        std::vector<std::string> dirs{""};  // "": the dynamic linker's search path
        if (const char* home = std::getenv("CUDA_HOME")) dirs.push_back(std::string(home) + "/lib64/");
        dirs.push_back("/usr/local/cuda/lib64/");
        for (const std::string& dir : dirs) {
            (void)dlopen((dir + "libcublasLt.so.13").c_str(), RTLD_NOW | RTLD_GLOBAL);
            lib = dlopen((dir + "libcublas.so.13").c_str(), RTLD_NOW | RTLD_LOCAL);
            if (lib != nullptr) break;
            const char* e = dlerror();
            tried += std::string(tried.empty() ? "" : "; ") + (e != nullptr ? e : (dir + "libcublas.so.13").c_str());
        }
        if (lib == nullptr) {
            error = "libcublas.so.13 could not be loaded (" + tried + ")";
            return;
        }
        create = reinterpret_cast<CreateFn>(dlsym(lib, "cublasCreate_v2"));
        destroy = reinterpret_cast<DestroyFn>(dlsym(lib, "cublasDestroy_v2"));
        set_stream = reinterpret_cast<SetStreamFn>(dlsym(lib, "cublasSetStream_v2"));
        gemm_ex = reinterpret_cast<GemmExFn>(dlsym(lib, "cublasGemmEx"));
        status_string = reinterpret_cast<StatusStringFn>(dlsym(lib, "cublasGetStatusString"));
        if (create == nullptr || destroy == nullptr || set_stream == nullptr || gemm_ex == nullptr)
            error = "libcublas.so.13 lacks cublasCreate_v2 / cublasDestroy_v2 / cublasSetStream_v2 / cublasGemmEx";
    }

    static const Library& get() {
        static const Library l;
        return l;
    }

    std::string describe(int status) const {
        std::string s = "cuBLAS status " + std::to_string(status);
        if (status_string != nullptr) s += std::string(" (") + status_string(status) + ")";
        return s;
    }
};

}  // namespace

struct CudaBackend::Cublas {
    cublasHandle handle = nullptr;
};

void CudaBackend::destroy_cublas() noexcept {
    if (cublas_ == nullptr) return;
    if (cublas_->handle != nullptr) (void)Library::get().destroy(cublas_->handle);
    delete cublas_;
    cublas_ = nullptr;
}

void CudaBackend::dense_gemm(const DenseGemmArgs& g) {
    activate();
    const Library& lib = Library::get();
    if (!lib.error.empty()) throw Error(LOWBIT_ERR_UNSUPPORTED, "the cuBLAS dense GEMM is unavailable: " + lib.error);
    std::lock_guard<std::mutex> lock(cublas_mutex_);
    if (cublas_ == nullptr) {
        cublasHandle h = nullptr;
        int st = lib.create(&h);
        if (st != 0) throw Error(LOWBIT_ERR_DEVICE, "cublasCreate failed: " + lib.describe(st));
        st = lib.set_stream(h, stream_);
        if (st != 0) {
            (void)lib.destroy(h);
            throw Error(LOWBIT_ERR_DEVICE, "cublasSetStream failed: " + lib.describe(st));
        }
        cublas_ = new Cublas{h};
    }
    const int type = g.dtype == LOWBIT_F32 ? kR32F : g.dtype == LOWBIT_F16 ? kR16F : kR16BF;
    const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
    const int m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
    const int st = g.b_kn ? lib.gemm_ex(cublas_->handle, kOpN, kOpN, n, m, k, &alpha, g.b, type, n, g.a, type, k,
                                        &beta, g.out, type, n, kCompute32F, kGemmDefault)
                          : lib.gemm_ex(cublas_->handle, kOpT, kOpN, n, m, k, &alpha, g.b, type, k, g.a, type, k,
                                        &beta, g.out, type, n, kCompute32F, kGemmDefault);
    if (st != 0) throw Error(LOWBIT_ERR_DEVICE, "cublasGemmEx failed: " + lib.describe(st));
}

}  // namespace cuda
}  // namespace lowbit
