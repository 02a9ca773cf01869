// cuda_backend.cu -- CudaBackend's life cycle, memory, copies, synchronization
// and the collection of the device-side error record.
//
// Asynchronous error reporting (lowbit.h: "the CUDA backend ... reports it
// from the next call on the context that waits for the device"):
//
//   lowbit_quantize            kernels record findings in status_ (device memory)
//                              and the call sets status_pending_; no host wait.
//   synchronize() / read()     drain the stream, then check_device_status():
//                                1. snapshot_status_kernel copies status_ into
//                                   pinned, mapped host memory and zeroes status_
//                                   -- one kernel, so no other work of the stream
//                                   can slip between "copy" and "reset";
//                                2. wait for it, decode, throw lowbit::Error.
//
// status_pending_ keeps the common case (a read after a GEMM) free of the extra
// launch: it is set AFTER a recording operation has been enqueued and cleared
// BEFORE the snapshot is enqueued, so a snapshot that sees it cleared was
// enqueued after every kernel whose findings it could miss.
#include <cuda_runtime.h>

#include <cstring>
#include <sstream>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"

namespace lowbit {
namespace cuda {
namespace {

// Moves the record to the host copy and resets it (launched <<<1, 1>>>).
__global__ void snapshot_status_kernel(DeviceStatus* status, DeviceStatus* host_copy) {
    *host_copy = *status;
    *status = DeviceStatus{};
}

float bits_to_float(unsigned long long bits) {
    unsigned u = static_cast<unsigned>(bits);
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
}

const char* op_name(unsigned long long op) {
    switch (op) {
        case kOpQuantize: return "lowbit_quantize";
        case kOpFlattenQuantize: return "lowbit_flatten_quantize";
        case kOpBitplaneQuantize: return "lowbit_bitplane_quantize";
        case kOpKronQuantize: return "lowbit_kron_quantize (input x, or the transformed row y)";
        default: return "an earlier operation";
    }
}

}  // namespace

// ---- life cycle -------------------------------------------------------------

CudaBackend::CudaBackend(int device) : device_(device) {
    // cudaFree(nullptr) creates the device's primary context now, so that a
    // device that cannot be used (exclusive mode, broken, out of memory) fails
    // the context creation rather than the first operation.
    cudaError_t err = cudaSetDevice(device);
    if (err == cudaSuccess) err = cudaFree(nullptr);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error(LOWBIT_ERR_NO_DEVICE, "CUDA device " + std::to_string(device) + " cannot be used: " +
                                              cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
    }
    try {
        int major = 0, minor = 0;
        LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
        LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
        LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
        sm90_ = major == 9 && minor == 0;
        int cooperative = 0;
        LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device));
        cooperative_launch_ = cooperative != 0;
        table_ = default_gemm_table();

        // The fatbinary holds SASS only (no PTX to JIT), for the archs of
        // LOWBIT_CUDA_ARCHS: a device outside them can run none of our kernels.
        cudaFuncAttributes attr;
        err = cudaFuncGetAttributes(&attr, snapshot_status_kernel);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            if (err == cudaErrorNoKernelImageForDevice || err == cudaErrorInvalidDeviceFunction)
                throw Error(LOWBIT_ERR_NO_DEVICE,
                            "CUDA device " + std::to_string(device) + " has compute capability " +
                                std::to_string(major) + "." + std::to_string(minor) +
                                ", but this liblowbit holds kernels only for archs " LOWBIT_CUDA_ARCHS_STRING);
            throw_cuda_error("cudaFuncGetAttributes", err);
        }

        LOWBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        void* p = nullptr;
        err = cudaMalloc(&p, sizeof(DeviceStatus));
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            throw Error(LOWBIT_ERR_OUT_OF_MEMORY,
                        std::string("cudaMalloc of the context's status word failed: ") + cudaGetErrorString(err));
        }
        status_ = static_cast<DeviceStatus*>(p);
        LOWBIT_CUDA_CHECK(cudaMemsetAsync(status_, 0, sizeof(DeviceStatus), stream_));
        LOWBIT_CUDA_CHECK(cudaHostAlloc(&p, sizeof(DeviceStatus), cudaHostAllocMapped | cudaHostAllocPortable));
        status_host_ = static_cast<DeviceStatus*>(p);
        std::memset(status_host_, 0, sizeof(DeviceStatus));
        LOWBIT_CUDA_CHECK(cudaHostGetDevicePointer(&p, status_host_, 0));
        status_host_dev_ = static_cast<DeviceStatus*>(p);
        LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    } catch (...) {
        destroy();
        throw;
    }
}

CudaBackend::~CudaBackend() {
    (void)cudaSetDevice(device_);
    destroy();
}

// Frees what exists; errors are ignored (a sticky device error must not stop
// the context from being destroyed).
void CudaBackend::destroy() noexcept {
    if (stream_ != nullptr) {
        (void)cudaStreamSynchronize(stream_);
        (void)cudaStreamDestroy(stream_);
        stream_ = nullptr;
    }
    if (status_ != nullptr) (void)cudaFree(status_);
    destroy_cublas();
    if (status_host_ != nullptr) (void)cudaFreeHost(status_host_);
    status_ = status_host_ = status_host_dev_ = nullptr;
    (void)cudaGetLastError();
}

void CudaBackend::activate() const { LOWBIT_CUDA_CHECK(cudaSetDevice(device_)); }

LaunchEnv CudaBackend::launch_env(unsigned long long op, int64_t cols) {
    unsigned long long tag = next_tag_.fetch_add(1, std::memory_order_relaxed);
    return LaunchEnv{stream_, sm_count_, StatusRef{status_, tag, op, static_cast<unsigned long long>(cols)}};
}

// ---- memory -------------------------------------------------------------------

void* CudaBackend::alloc(int64_t bytes) {
    activate();
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, static_cast<size_t>(bytes));  // 256-byte aligned
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        if (err != cudaErrorMemoryAllocation) throw_cuda_error("cudaMalloc", err);
        std::string msg = "cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(err);
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
            msg += " (device " + std::to_string(device_) + " has " + std::to_string(free_b) + " of " +
                   std::to_string(total_b) + " bytes free)";
        (void)cudaGetLastError();
        throw Error(LOWBIT_ERR_OUT_OF_MEMORY, msg);
    }
    return p;
}

bool DeviceScratch::reserve(size_t need, size_t min_bytes, const char* what) {
    if (need <= bytes) return false;
    void* old = ptr;
    ptr = nullptr;
    bytes = 0;
    if (old != nullptr) LOWBIT_CUDA_CHECK(cudaFree(old));  // waits for the kernels still using it
    const size_t size = need > min_bytes ? need : min_bytes;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        ptr = nullptr;
        std::string msg = "cudaMalloc of " + std::to_string(size) + " bytes for " + what + " failed: " +
                          cudaGetErrorString(err);
        if (err != cudaErrorMemoryAllocation) throw Error(LOWBIT_ERR_DEVICE, msg);
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
            msg += " (the device has " + std::to_string(free_b) + " of " + std::to_string(total_b) + " bytes free)";
        (void)cudaGetLastError();
        throw Error(LOWBIT_ERR_OUT_OF_MEMORY, msg);
    }
    bytes = size;
    return true;
}

// cudaFree waits for the device first, so work still using p finishes.
void CudaBackend::release(void* p) noexcept {
    if (p == nullptr) return;
    (void)cudaSetDevice(device_);
    (void)cudaFree(p);
    (void)cudaGetLastError();
}

// ---- copies and synchronization -------------------------------------------------

void CudaBackend::write(void* dst, const void* host_src, int64_t bytes) {
    activate();
    LOWBIT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, stream_));
    LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::read(void* host_dst, const void* src, int64_t bytes) {
    activate();
    LOWBIT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, stream_));
    LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    check_device_status();
}

void CudaBackend::copy(void* dst, const void* src, int64_t bytes) {
    activate();
    LOWBIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::synchronize() {
    activate();
    LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    check_device_status();
}

// ---- the device-side error record ---------------------------------------------

void CudaBackend::check_device_status() {
    if (!status_pending_.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(check_mutex_);
    if (!status_pending_.exchange(false, std::memory_order_acq_rel)) return;

    DeviceStatus s;
    try {
        snapshot_status_kernel<<<1, 1, 0, stream_>>>(status_, status_host_dev_);
        LOWBIT_CUDA_CHECK_LAUNCH("snapshot_status_kernel");
        LOWBIT_CUDA_CHECK(cudaStreamSynchronize(stream_));
        std::memcpy(&s, status_host_, sizeof(s));
    } catch (...) {
        mark_status_pending();  // not collected: leave it for the next check
        throw;
    }
    if (s.op_tag == 0) return;

    // The CPU backend's messages and precedence: plan, then scales, then data.
    std::ostringstream m;
    m << op_name(s.op) << ": ";
    if (s.bad_plan != 0) {
        m << "flatten plan entry " << ~s.bad_plan << " (source column " << static_cast<long long>(s.plan_src)
          << ", multiplier " << bits_to_float(s.plan_mult) << ") is invalid: the source column must be in [0, "
          << s.src_cols << ") and the multiplier finite";
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT, m.str());
    }
    if (s.bad_scale != 0) {
        m << "given scale at index " << ~s.bad_scale << " is " << bits_to_float(s.scale_bits)
          << "; every scale must be finite and > 0";
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT, m.str());
    }
    if (s.nonfinite != 0) {
        const unsigned long long key = ~s.nonfinite, index = key >> 2, cols = s.cols == 0 ? 1 : s.cols;
        const unsigned cls = static_cast<unsigned>(key & 3);
        const unsigned long long col = s.op == kOpFlattenQuantize ? s.src_col : index % cols;
        m << "input x has a non-finite value (" << (cls == kNaN ? "NaN" : cls == kPosInf ? "+Inf" : "-Inf")
          << ") at row " << index / cols << ", column " << col;
        throw Error(LOWBIT_ERR_NONFINITE, m.str());
    }
}

}  // namespace cuda
}  // namespace lowbit
