// cuda_backend.h -- the CUDA implementation of lowbit::Backend.
//
// One CudaBackend per lowbit_context:
//   * device_  the GPU it runs on; every entry point starts with activate()
//              (cudaSetDevice), because Java may call from any thread and the
//              current device is per-thread state in the CUDA runtime.
//   * stream_  one non-blocking stream; all work of the context is ordered on
//              it (several host threads may enqueue at once: the CUDA runtime
//              API is thread-safe, and no lowbit operation needs two of its
//              launches to be adjacent in the stream).
//   * status_  the device-side error record (device_status.cuh) that kernels
//              fill asynchronously; synchronize() and read() collect it.
//
// The member functions are spread over several files, one idea each:
//   cuda_backend.cu      construction, memory, copies, synchronization, status
//   quantize_dispatch.cu quantize()
//   gemm_dispatch.cu     gemm(), gemm_config(), gemm_choice(), set_gemm_table(): which GEMM runs
//   gemm_sm90_w4.cu      the fused 4-bit-weight GEMM on Hopper (LOWBIT_GEMM_SM90_W4): when, and how it runs
//   gemm_sm80_s4.cu      the native INT4 tensor-core GEMM (LOWBIT_GEMM_SM80_S4): when, and how it runs
//   gemm_dgq_simt.cu     gemm_dgq(): which DGQ GEMM runs
//   expand_weights.cu    4-bit operands to INT8 for the tuned kernels (W4A8 / W4A4 / DGQ at M > 16)
//   cublas_gemm.cu       dense_gemm() (cuBLAS loaded at run time)
//   dequantize.cu        dequantize()
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "../backend.h"
#include "device_status.cuh"

namespace lowbit {
namespace cuda {

struct StreamProblem;  // gemv_stream.cuh

// Device memory owned by the context, grown on demand and freed with it: the split-K workspace of
// the weight-streaming kernels (gemv_stream.cu; zeroed when allocated, and every launch leaves it
// zero), the tuned kernels' stream-K workspace, and the INT8 copies of 4-bit weights and 4-bit
// activations (expand_weights.cu). `mutex` is held from the size check to the end of the launches
// that use the memory, so a growth never frees memory a queued launch was given, and no other
// request's launches slip between a producer and its consumer on the stream. A request that holds
// several takes them in the order activations, weights, workspace (std::scoped_lock where it takes
// two at once), so two requests never wait on each other.
struct DeviceScratch {
    std::mutex mutex;
    void* ptr = nullptr;
    size_t bytes = 0;
    DeviceScratch() = default;
    DeviceScratch(const DeviceScratch&) = delete;
    DeviceScratch& operator=(const DeviceScratch&) = delete;
    ~DeviceScratch() {
        if (ptr != nullptr) (void)cudaFree(ptr);
        (void)cudaGetLastError();
    }
    // With mutex held: makes bytes >= need (allocating max(need, min_bytes)); returns whether it
    // allocated. The old block is freed first (cudaFree waits for the device, so no queued kernel
    // still uses it). A failed allocation throws Error(LOWBIT_ERR_OUT_OF_MEMORY) naming `what`
    // and the size, and leaves the scratch empty (a later, smaller request allocates again).
    // cuda_backend.cu.
    bool reserve(size_t need, size_t min_bytes, const char* what);
};

// 4-bit weights (N x K packed nibbles, lowbit.h's order) as expand_weights.cu reads them. With no
// group scales it is any packed S4 matrix: W4A4's activations (n = M rows) are expanded the same way.
struct PackedWeights {
    const uint8_t* codes;         // row j at byte j * ld / 2
    int64_t ld;                   // elements (nibbles), even, >= k
    const uint8_t* group_scales;  // DGQ: N x (K / group) U8 scales S2; null: plain S4 (W4A8)
    const int8_t* zero_points;    // DGQ: N x (K / group) S8, or null (signed codes)
    int64_t group;                // DGQ: divides k
    int64_t n, k;
};

// What a launcher needs from the context.
struct LaunchEnv {
    cudaStream_t stream;
    int sm_count;      // streaming multiprocessors, for grid sizes
    StatusRef status;  // where kernels record non-finite inputs / bad scales
};

class CudaBackend final : public Backend {
public:
    // Throws Error(LOWBIT_ERR_NO_DEVICE) when `device` cannot be used.
    explicit CudaBackend(int device);
    ~CudaBackend() override;
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    int kind() const override { return LOWBIT_BACKEND_CUDA; }

    void* alloc(int64_t bytes) override;
    void release(void* p) noexcept override;
    void write(void* dst, const void* host_src, int64_t bytes) override;
    void read(void* host_dst, const void* src, int64_t bytes) override;
    void copy(void* dst, const void* src, int64_t bytes) override;
    void synchronize() override;

    void quantize(const QuantizeArgs& args) override;
    void gemm(const GemmArgs& args) override;
    void dequantize(const DequantArgs& args) override;
    void bitplane_quantize(const BitplaneQuantizeArgs& args) override;  // bitplane_quantize.cu
    void bitplane_gemm(const BitplaneGemmArgs& args) override;          // bitplane_gemm.cu
    void kron_quantize(const KronQuantizeArgs& args) override;          // kron_quantize.cu
    bool kron_quantize_tf32(const KronQuantizeArgs& args);             // kron_quantize.cu: LOWBIT_KRON_TF32
    bool kron_quantize_half(const KronQuantizeArgs& args);             // kron_quantize_half.cu: LOWBIT_KRON_HALF
    void gemm_dgq(const DgqGemmArgs& args) override;  // gemm_dgq_simt.cu
    void gemm_config(const GemmArgs& args, int config) override;
    int gemm_choice(const GemmArgs& args) override;
    void set_gemm_table(const GemmTable& table) override;
    void dense_gemm(const DenseGemmArgs& args) override;
    void gemm_config_binary(int config, int* ptx_arch, int* sass_arch, int* jit) override;  // gemm_sm80_s4.cu

private:
    // gemm_dispatch.cu: the table a context starts with (LOWBIT_GEMM_TUNING or the built-in one).
    static std::shared_ptr<const GemmTable> default_gemm_table();
    // Why config cannot run args ("" when it can): S8 activations with S8 weights, S8 activations
    // with S4 weights, or S4 activations with S4 weights (4-bit operands run through expanded INT8
    // copies), on the tuned kernels' alignment rules.
    std::string tuned_gemm_refusal(const GemmArgs& args, int config) const;
    // The tuned configuration for args (the table's, else the heuristic's), or
    // LOWBIT_GEMM_PORTABLE when no tuned kernel can run it. Does not consider the streaming kernel.
    int tuned_choice(const GemmArgs& args);
    // Enqueues the tuned kernel `config` (which can run args; S8 weights).
    void run_tuned_gemm(const GemmArgs& args, int config);
    // Enqueues the expansion of w into expanded_weights_ and the tuned kernel `config` on args with
    // that INT8 copy as B (args.b / ldb / b_type are replaced; tuned_gemm_refusal(args) == "").
    void run_expanded_gemm(const PackedWeights& w, const GemmArgs& args, int config);
    // W4A4 (args S4 x S4): enqueues the expansion of both operands (one launch) into
    // expanded_activations_ and expanded_weights_, then the tuned kernel `config` on the two copies
    // (tuned_gemm_refusal(args) == "").
    void run_expanded_w4a4_gemm(const GemmArgs& args, int config);
    // gemm_dispatch.cu: whether the weight-streaming kernel (gemv_stream.cu, M <= kStreamMaxM)
    // can run p on this device, and enqueuing it.
    bool stream_gemm_fits(const StreamProblem& p);
    void run_stream_gemm(const StreamProblem& p);
    int compute_capability_major();  // of device_, queried once
    // gemm_sm80_s4.cu: why the native INT4 tensor-core kernel (sm80/s4_tensorop.cu) cannot run args
    // ("" when it can); whether AUTO picks it (compute capability 8.x only); enqueuing it (int32
    // products into sm80_s4_acc_, then the epilogue kernel; refused requests throw UNSUPPORTED).
    std::string sm80_s4_refusal(const GemmArgs& args);
    bool sm80_s4_auto(const GemmArgs& args);
    void run_sm80_s4_gemm(const GemmArgs& args);
    // gemm_sm90_w4.cu: why the fused 4-bit-weight kernel (sm90/w4_*.cu, LOWBIT_GEMM_SM90_W4) cannot
    // run a W4A8 / W4A4 request or a DGQ request ("" when it can), and enqueuing it (refused
    // requests throw UNSUPPORTED).
    std::string sm90_w4_refusal(const GemmArgs& args) const;
    std::string sm90_w4_dgq_refusal(const DgqGemmArgs& args) const;
    void run_sm90_w4_gemm(const GemmArgs& args);
    void run_sm90_w4_dgq(const DgqGemmArgs& args);

    void activate() const;  // cudaSetDevice(device_)
    void destroy() noexcept;
    void destroy_cublas() noexcept;  // cublas_gemm.cu

    // A LaunchEnv whose StatusRef carries a fresh tag for one operation.
    LaunchEnv launch_env(unsigned long long op, int64_t cols);
    // Called after an operation that may record findings has been enqueued.
    void mark_status_pending() { status_pending_.store(true, std::memory_order_release); }
    // After the stream has drained: moves the device record to the host,
    // resets it, and throws the error it describes (if any).
    void check_device_status();

    int device_ = -1;
    int sm_count_ = 1;
    cudaStream_t stream_ = nullptr;
    DeviceStatus* status_ = nullptr;         // device memory
    DeviceStatus* status_host_ = nullptr;    // pinned, mapped: written by the snapshot kernel
    DeviceStatus* status_host_dev_ = nullptr;  // the device's address of status_host_
    std::mutex check_mutex_;                 // one status check at a time (owns status_host_)
    std::atomic<unsigned long long> next_tag_{1};
    std::atomic<bool> status_pending_{false};  // findings may have been recorded since the last check

    bool sm90_ = false;                      // compute capability 9.0: the tuned W8A8 kernels can run
    std::mutex table_mutex_;                 // guards table_ (replaced by set_gemm_table)
    std::shared_ptr<const GemmTable> table_;
    std::atomic<int> cc_major_{-1};          // compute capability major, -1 until queried
    DeviceScratch tuned_workspace_;          // the tuned kernels' workspace (stream-K partial sums)
    DeviceScratch stream_scratch_;           // split-K workspace of the streaming kernels (zero between uses)
    DeviceScratch expanded_weights_;         // INT8 copy of the 4-bit weights of the latest W4A8/W4A4/DGQ
                                             // call that ran a tuned kernel; N x K bytes of the largest one
    DeviceScratch expanded_activations_;     // INT8 copy of the 4-bit activations of the latest W4A4 call
                                             // that ran a tuned kernel; M x K bytes of the largest one
    DeviceScratch group_terms_;              // DGQ group terms in the fused kernel's layout (gemm_sm90_w4.cu)
    DeviceScratch sm80_s4_acc_;              // int32 products of the INT4 tensor-core GEMM, before the
                                             // epilogue (gemm_sm80_s4.cu; row chunks of <= 64 MiB, or 128 rows)
    DeviceScratch tensor_partials_;          // one partial max|x| per block of the one-kernel PER_TENSOR
                                             // dynamic quantize (quantize_tensor_dynamic.cu); every slot is
                                             // written by each launch, so it is never cleared
    bool cooperative_launch_ = false;        // cudaDevAttrCooperativeLaunch: grid-wide barriers can run
    struct Cublas;                           // cublas_gemm.cu
    std::mutex cublas_mutex_;
    Cublas* cublas_ = nullptr;               // created at the first dense_gemm call, owned
};

// gemm_sm90_w4.cu: the largest M for which lowbit_gemm_dgq runs the fused kernel (the expansion
// path above it): kDgqFusedMaxM, or LOWBIT_DGQ_FUSED_MAX_M from the environment, read once.
int64_t dgq_fused_max_m();

// occupancy.cu: blocks of `kernel` (a __global__ function) with `threads` threads and
// `dynamic_smem` bytes of dynamic shared memory that one SM of the current device holds at once
// (0: none), asked once per (device, kernel, threads, dynamic_smem).
int resident_blocks_per_sm(const void* kernel, int threads, size_t dynamic_smem = 0);

// ---- kernel launchers (each in its own .cu file) -----------------------------

// quantize_rowwise.cu: PER_ROW / PER_GROUP with computed scales, one fused
// kernel (one block per row: reduce, write the scales, quantize). Tries
// launch_quantize_per_token first.
void launch_quantize_rowwise(const QuantizeArgs& args, const LaunchEnv& env);

// quantize_per_token.cu: PER_ROW with computed scales on compact aligned rows (no flatten plan,
// cols % 8 == 0, at most 16384 columns): a persistent kernel of row blocks, the row in registers.
// False (nothing enqueued) for anything else, and for everything when LOWBIT_ROWQUANT=legacy (read
// once; "prefetch" runs it loading each block's next row ahead).
bool launch_quantize_per_token(const QuantizeArgs& args, const LaunchEnv& env);

// quantize_amax.cu: PER_TENSOR / PER_COLUMN computed scales: writes
// scales[i] = amax_i / qmax (or 1) into args.scales, on the device.
void launch_compute_scales(const QuantizeArgs& args, const LaunchEnv& env);

// quantize_tensor_dynamic.cu: PER_TENSOR with a computed scale in one cooperative kernel (amax,
// grid barrier, scale, quantize). quantize_tensor_dynamic_fits: whether it takes args (computed
// PER_TENSOR, no flatten plan, quantize_rows_aligned, cols % 8 == 0, and LOWBIT_TENSOR_QUANT is not
// "legacy"; the caller also checks that the device has cooperative launch). The launch needs
// `partials`: device scratch of quantize_tensor_dynamic_partials(sm_count) floats.
bool quantize_tensor_dynamic_fits(const QuantizeArgs& args);
int64_t quantize_tensor_dynamic_partials(int sm_count);
void launch_quantize_tensor_dynamic(const QuantizeArgs& args, const LaunchEnv& env, float* partials,
                                    int64_t partial_capacity);

// quantize_apply.cu: quantizes x with the scales found in args.scales;
// check_scales validates them (given scales must be finite and > 0).
void launch_quantize_apply(const QuantizeArgs& args, const LaunchEnv& env, bool check_scales);

// flatten_apply.cu: flatten-and-quantize with given PER_TENSOR / PER_ROW / PER_COLUMN scales, a
// thread per unit of 8 expanded columns over many rows; false (nothing enqueued) for anything else,
// which quantize_apply then runs.
bool launch_flatten_apply(const QuantizeArgs& args, const LaunchEnv& env);

// flatten_apply.cu: flatten-and-quantize with computed PER_ROW scales (per token) through the row
// kernel (flatten_rows.cu) when the caller's identity_prefix covers the source row (or
// LOWBIT_FLATTEN=rows); false (nothing enqueued) otherwise, and quantize_rowwise then runs it.
bool launch_flatten_per_token(const QuantizeArgs& args, const LaunchEnv& env);

// flatten_apply.cu: LOWBIT_FLATTEN=legacy in the environment (read once): flatten plans take the
// earlier paths (quantize_apply with scalar gathers; no windowed gathers in quantize_rowwise).
bool flatten_legacy();

// gemm_simt.cu: the portable tiled __dp4a GEMM, any shape and stride.
void launch_gemm_simt(const GemmArgs& args, const LaunchEnv& env);

// expand_weights.cu: out (S8, w.n x ldo, ldo % 16 == 0, ldo >= w.k, 16-byte aligned) = the INT8
// weights of w (S4 codes, or DGQ (q - z) * S2 mod 256), columns w.k .. ldo-1 zero.
void launch_expand_weights(const PackedWeights& w, int8_t* out, int64_t ldo, const LaunchEnv& env);

// One matrix for launch_expand_pair: src expanded into out (S8, src.n x ldo, same rules as above).
struct ExpandJob {
    PackedWeights src;
    int8_t* out;
    int64_t ldo;
};

// expand_weights.cu: both expansions in one launch (W4A4: activations and weights), the grid split
// between them; two launches when they need different kernels (S4 and DGQ).
void launch_expand_pair(const ExpandJob& first, const ExpandJob& second, const LaunchEnv& env);

// dequantize.cu: the epilogue alone, elementwise.
void launch_dequantize(const DequantArgs& args, const LaunchEnv& env);

}  // namespace cuda
}  // namespace lowbit
