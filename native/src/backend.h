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

#include "gemm_table.h"
#include "op_log.h"
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
    int64_t identity_prefix = 0;         // flatten: leading entries the caller says are src_index[j] == j (a hint)
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

// out[M,N] (+)= a[M,K] * op(b), dense, one float type; see lowbit_dense_gemm.
struct DenseGemmArgs {
    int dtype;          // LOWBIT_F32, LOWBIT_F16 or LOWBIT_BF16
    const void* a;      // M x K
    const void* b;      // N x K (b_kn false) or K x N (b_kn true)
    bool b_kn;
    void* out;          // M x N
    int64_t m, n, k;
    bool accumulate;    // out += a * op(b)
};

// lowbit_bitplane_quantize: per-row quantization of x to bit planes.
struct BitplaneQuantizeArgs {
    const void* x;
    int x_type;               // LOWBIT_F32 / F16 / BF16
    int64_t rows, cols, ldx;
    int bits;                 // 1..8 (2..8 when symmetric)
    bool asymmetric;          // unsigned codes with zero points, else signed
    uint64_t* planes;         // rows * bits * ldp words
    int64_t ldp;              // words, even, >= ceil(cols / 64)
    float* scales;            // rows
    int32_t* zeros;           // rows (asymmetric), else null
    int32_t* sums;            // rows
};

// lowbit_bitplane_gemm: out = epilogue(sum over plane pairs + zero-point terms).
struct BitplaneGemmArgs {
    const uint64_t* x;
    int x_bits;
    bool x_signed;
    int64_t ldx;              // words
    const int32_t* x_zeros;   // m entries or null
    const int32_t* x_sums;    // m entries or null (needed when w_zeros)
    const uint64_t* w;
    int w_bits;
    bool w_signed;
    int64_t ldw;
    const int32_t* w_zeros;   // n entries or null
    const int32_t* w_sums;    // n entries or null (needed when x_zeros)
    int64_t m, n, k;
    const float* x_scales;    // 1 or m (float outputs)
    int64_t x_scale_count;
    const float* w_scales;    // 1 or n (float outputs)
    int64_t w_scale_count;
    const float* bias;        // n or null
    int out_type;             // LOWBIT_S32 / F32 / F16 / BF16
    void* out;
    int64_t ldo;
};

// lowbit_kron_quantize: y = x * (P1 (x) P2) row by row, then per-row
// quantization with clipped scales (numerics and order in lowbit.h).
struct KronQuantizeArgs {
    const void* x;
    int x_type;               // LOWBIT_F32 / F16 / BF16
    int64_t rows, ldx;        // x is rows x (n1 * n2)
    const float* p1;          // n1 x n1, dense row-major
    int n1;                   // 1..LOWBIT_KRON_MAX_FACTOR
    const float* p2;          // n2 x n2, dense row-major
    int n2;                   // 1..LOWBIT_KRON_MAX_FACTOR
    float clip_max, clip_min; // in (0, 1]
    int bits;                 // 8 -> S8, 4 -> packed S4
    void* q;
    int64_t ldq;              // elements; even for S4
    float* scales;            // rows
    int precision;            // LOWBIT_KRON_EXACT / _TF32 / _HALF (CUDA; the CPU computes exactly)
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual int kind() const = 0;  // lowbit_backend

    // The buffers of the operations api.cpp put on this backend's stream (op_log.h).
    OperationLog op_log;

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
    // ABQ-LLM bit-plane operations; the defaults throw Error(LOWBIT_ERR_UNSUPPORTED).
    virtual void bitplane_quantize(const BitplaneQuantizeArgs& args);
    virtual void bitplane_gemm(const BitplaneGemmArgs& args);
    // FlatQuant's fused Kronecker transform + per-token quantization; the default
    // throws Error(LOWBIT_ERR_UNSUPPORTED).
    virtual void kron_quantize(const KronQuantizeArgs& args);

    // gemm() with a chosen kernel configuration (lowbit_gemm_dequant_config): a config index,
    // LOWBIT_GEMM_AUTO or LOWBIT_GEMM_PORTABLE. The default runs gemm() for AUTO and PORTABLE (a
    // backend with one kernel) and throws Error(LOWBIT_ERR_UNSUPPORTED) for an index.
    virtual void gemm_config(const GemmArgs& args, int config);
    // The configuration gemm() would run for args (pointers unused): the default is
    // LOWBIT_GEMM_PORTABLE.
    virtual int gemm_choice(const GemmArgs& args);
    // Replaces the dispatch table; the default throws Error(LOWBIT_ERR_UNSUPPORTED).
    virtual void set_gemm_table(const GemmTable& table);
    // Dense float GEMM (cuBLAS on CUDA, the FP64-summed reference on the CPU).
    virtual void dense_gemm(const DenseGemmArgs& args) = 0;
    // lowbit_gemm_config_binary: the PTX and SASS architectures of the code the device loaded for
    // a kernel configuration, and whether the driver JIT-compiled it; the default throws
    // Error(LOWBIT_ERR_UNSUPPORTED).
    virtual void gemm_config_binary(int config, int* ptx_arch, int* sass_arch, int* jit);

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

// Tuned GEMM configurations compiled into this build (0 without sm_90a), and their names.
int gemm_config_count();
const char* gemm_config_name(int config);

// lowbit_dgq_check on host copies of the weights (cpu/dgq_check.cpp): throws
// Error(LOWBIT_ERR_INVALID_ARGUMENT) naming the first group with S2 == 0 or an
// element with |W8| > 127.
void dgq_check_host(const uint8_t* w, int64_t ldw, const uint8_t* group_scales, const int8_t* zero_points,
                    int64_t group, int64_t n, int64_t k);

}  // namespace lowbit
