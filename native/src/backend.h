// backend.h -- what a compute backend implements behind the C ABI.
//
// api.cpp validates every argument (handles, dtypes, shapes, strides, buffer
// sizes) before it calls a backend, so a backend may assume well-formed
// requests; it reports run-time failures (allocation, device errors,
// non-finite inputs) by throwing lowbit::Error.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "lowbit/lowbit.h"

namespace lowbit {

// A failure with a lowbit_status code; api.cpp turns it into the return code
// and the thread's last-error message.
class Error : public std::runtime_error {
public:
    Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
    int code() const { return code_; }

private:
    int code_;
};

// Quantize x (rows x cols) to q; see lowbit_quantize. With src_index set it is
// lowbit_flatten_quantize: row r of the quantized matrix is
// x'[r][j] = x[r][src_index[j]] * src_mult[j] for j < cols, where x has
// src_cols columns.
struct QuantizeArgs {
    const void* x;
    int x_type;          // LOWBIT_F32 / F16 / BF16
    int64_t rows, cols, ldx;  // cols: columns of the quantized (expanded) matrix
    int bits;            // 8 -> S8, 4 -> packed S4
    int granularity;     // lowbit_granularity
    int64_t group;       // for LOWBIT_PER_GROUP, divides cols
    bool scales_given;   // true: read scales; false: compute and write them
    void* q;
    int64_t ldq;         // elements; even for S4
    float* scales;
    const int32_t* src_index = nullptr;  // flatten plan: source column per output column
    const float* src_mult = nullptr;     // flatten plan: multiplier per output column
    int64_t src_cols = 0;                // columns of x when flattening (else == cols)
};

// out[M,N] = epilogue(A[M,K] * B[N,K]^T). out_type == LOWBIT_S32 writes the raw
// int32 accumulator (scales and bias are then null).
struct GemmArgs {
    int a_type;          // LOWBIT_S8 / LOWBIT_S4
    const void* a;
    int64_t lda;
    int b_type;          // LOWBIT_S8 / LOWBIT_S4
    const void* b;
    int64_t ldb;
    int64_t m, n, k;
    const float* a_scales;  // 1 or m entries (epilogue only)
    int64_t a_scale_count;
    const float* b_scales;  // 1 or n entries (epilogue only)
    int64_t b_scale_count;
    const float* bias;      // n entries or null
    int out_type;        // LOWBIT_S32 / F32 / F16 / BF16
    void* out;
    int64_t ldo;
};

// out[M,N] = epilogue(acc[M,N]); see lowbit_dequantize_s32.
struct DequantArgs {
    const int32_t* acc;
    int64_t m, n, ldacc;
    const float* a_scales;
    int64_t a_scale_count;
    const float* b_scales;
    int64_t b_scale_count;
    const float* bias;
    int out_type;        // LOWBIT_F32 / F16 / BF16
    void* out;
    int64_t ldo;
};

// out[M,N] = epilogue(A[M,K] * W8[N,K]^T) with W8 expanded from DGQ's packed
// 4-bit codes and integer group scales; see lowbit_gemm_dgq.
struct DgqGemmArgs {
    const int8_t* a;              // S8, M x K
    int64_t lda;
    const uint8_t* w;             // packed 4-bit codes, N x K
    int64_t ldw;                  // elements (nibbles), even
    const uint8_t* group_scales;  // N x (K / group), each >= 1 when checked
    const int8_t* zero_points;    // N x (K / group), or null: signed codes
    int64_t group;                // divides k
    int64_t m, n, k;
    const float* a_scales;        // 1 or m entries
    int64_t a_scale_count;
    const float* channel_scales;  // n entries
    const float* bias;            // n entries or null
    int out_type;                 // LOWBIT_F32 / F16 / BF16
    void* out;
    int64_t ldo;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual int kind() const = 0;  // lowbit_backend

    // Memory in this backend's address space. alloc throws Error(OOM).
    virtual void* alloc(int64_t bytes) = 0;
    virtual void release(void* p) noexcept = 0;
    virtual void write(void* dst, const void* host_src, int64_t bytes) = 0;
    virtual void read(void* host_dst, const void* src, int64_t bytes) = 0;
    virtual void copy(void* dst, const void* src, int64_t bytes) = 0;
    virtual void synchronize() = 0;

    virtual void quantize(const QuantizeArgs& args) = 0;
    virtual void gemm(const GemmArgs& args) = 0;
    virtual void dequantize(const DequantArgs& args) = 0;
    // DGQ A8W4 GEMM. The default throws Error(LOWBIT_ERR_UNSUPPORTED) naming
    // the backend, so a backend without the kernel still compiles and reports
    // it clearly.
    virtual void gemm_dgq(const DgqGemmArgs& args);

    // CPU-only knobs; other backends reject them.
    virtual void set_cpu_isa(int isa);
    virtual void set_threads(int threads);
};

std::unique_ptr<Backend> make_cpu_backend();

// Throws Error(LOWBIT_ERR_NO_DEVICE) when there is no usable device, and
// Error(LOWBIT_ERR_UNSUPPORTED) in a build without CUDA.
std::unique_ptr<Backend> make_cuda_backend(int device);

// 0 when built without CUDA or when no driver/device is present.
int cuda_device_count();

// Architectures compiled into this build ("" without CUDA), for build_info.
const char* cuda_build_info();

int cpu_isa_best();

// lowbit_dgq_check on host copies of the weights (cpu/dgq_check.cpp): throws
// Error(LOWBIT_ERR_INVALID_ARGUMENT) naming the first group with S2 == 0 or an
// element with |W8| > 127.
void dgq_check_host(const uint8_t* w, int64_t ldw, const uint8_t* group_scales, const int8_t* zero_points,
                    int64_t group, int64_t n, int64_t k);

}  // namespace lowbit
