// cublas_baseline.cu -- CudaBackend::baseline_gemm_f16: cuBLAS FP16 as the same-run baseline of
// the benchmarks, without cuBLAS at build time.
//
// libcublas.so.13 is opened with dlopen at the first call (the dynamic linker's path first, then
// $CUDA_HOME/lib64 and /usr/local/cuda/lib64; libcublasLt.so.13 from the same directory first,
// RTLD_GLOBAL, so libcublas finds it) and the five functions used are declared here with cuBLAS's
// documented C prototypes and enum values (cublas_api.h, CUDA 13.0). One handle per context,
// bound to the context's stream.
//
// The product: row-major out[M,N] = a[M,K] * b[N,K]^T is, read column-major, out'[N,M] =
// op_T(b'[K,N]) * a'[K,M] with b' = b and a' = a reinterpreted (ld K): cublasGemmEx(OP_T, OP_N,
// N, M, K, b, ld K, a, ld K, out, ld N), FP16 operands, FP32 compute (CUBLAS_COMPUTE_32F), the
// "TN" layout torch's fp16 nn.Linear uses.
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
constexpr int kR16F = 2;                        // cudaDataType_t CUDA_R_16F
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

void CudaBackend::baseline_gemm_f16(const F16GemmArgs& g) {
    activate();
    const Library& lib = Library::get();
    if (!lib.error.empty())
        throw Error(LOWBIT_ERR_UNSUPPORTED, "the cuBLAS FP16 baseline is unavailable: " + lib.error);
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
    const float alpha = 1.0f, beta = 0.0f;
    const int m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
    const int st = lib.gemm_ex(cublas_->handle, kOpT, kOpN, n, m, k, &alpha, g.b, kR16F, k, g.a, kR16F, k, &beta,
                               g.out, kR16F, n, kCompute32F, kGemmDefault);
    if (st != 0) throw Error(LOWBIT_ERR_DEVICE, "cublasGemmEx failed: " + lib.describe(st));
}

}  // namespace cuda
}  // namespace lowbit
