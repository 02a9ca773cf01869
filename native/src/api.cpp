// api.cpp -- the C ABI: argument validation, error capture, dispatch to a backend.
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <sstream>
#include <string>

#include "backend.h"
#include "lowbit/lowbit.h"

#define LOWBIT_VERSION_STRING "0.1.0"

struct lowbit_context {
    std::shared_ptr<lowbit::Backend> backend;
};

struct lowbit_buffer {
    std::shared_ptr<lowbit::Backend> backend;  // keeps the backend alive
    void* ptr;
    int64_t bytes;
};

namespace lowbit {

void Backend::set_cpu_isa(int) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, "the CPU instruction set can only be chosen on a CPU context");
}
void Backend::set_threads(int) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, "the thread count can only be set on a CPU context");
}
void Backend::gemm_dgq(const DgqGemmArgs&) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, std::string("the DGQ A8W4 GEMM is not implemented on the ") +
                                            (kind() == LOWBIT_BACKEND_CUDA ? "CUDA" : "this") + " backend yet");
}

void Backend::gemm_config(const GemmArgs& args, int config) {
    if (config == LOWBIT_GEMM_SM80_S4)
        throw Error(LOWBIT_ERR_UNSUPPORTED, "GEMM configuration LOWBIT_GEMM_SM80_S4 (-3) is the CUDA INT4 tensor-core "
                                            "kernel; this backend has only its portable kernel");
    if (config == LOWBIT_GEMM_SM90_W4)
        throw Error(LOWBIT_ERR_UNSUPPORTED, "GEMM configuration LOWBIT_GEMM_SM90_W4 (-4) is the CUDA fused 4-bit-weight "
                                            "kernel for sm_90; this backend has only its portable kernel");
    if (config != LOWBIT_GEMM_AUTO && config != LOWBIT_GEMM_PORTABLE)
        throw Error(LOWBIT_ERR_UNSUPPORTED, "GEMM configuration " + std::to_string(config) +
                                                " is a tuned CUDA kernel; this backend has only its portable kernel");
    gemm(args);
}
int Backend::gemm_choice(const GemmArgs&) { return LOWBIT_GEMM_PORTABLE; }
void Backend::set_gemm_table(const GemmTable&) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, "GEMM tuning tables apply to CUDA contexts only (a CPU context has no tuned kernels)");
}
void Backend::gemm_config_binary(int, int*, int*, int*) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, "GEMM kernel binaries are reported on CUDA contexts only");
}

void Backend::bitplane_quantize(const BitplaneQuantizeArgs&) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, "bit-plane quantization is not implemented on this backend");
}
void Backend::bitplane_gemm(const BitplaneGemmArgs&) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, "the bit-plane GEMM is not implemented on this backend");
}
void Backend::kron_quantize(const KronQuantizeArgs&) {
    throw Error(LOWBIT_ERR_UNSUPPORTED, "the Kronecker transform + quantize is not implemented on this backend");
}

namespace {

thread_local std::string last_error;

int fail(int code, const std::string& message) {
    last_error = message;
    return code;
}

// Runs body, mapping exceptions to status codes and the thread's message.
template <class F>
int guarded(const char* op, F&& body) {
    try {
        last_error.clear();
        body();
        return LOWBIT_OK;
    } catch (const Error& e) {
        return fail(e.code(), std::string(op) + ": " + e.what());
    } catch (const std::bad_alloc&) {
        return fail(LOWBIT_ERR_OUT_OF_MEMORY, std::string(op) + ": out of host memory");
    } catch (const std::exception& e) {
        return fail(LOWBIT_ERR_INTERNAL, std::string(op) + ": internal error: " + e.what());
    } catch (...) {
        return fail(LOWBIT_ERR_INTERNAL, std::string(op) + ": internal error");
    }
}

// The operation log (op_log.h) of the CUDA stream operation this thread is running, from its
// first checked buffer on (null before, and outside one): check_buffer records every buffer
// argument in it.
thread_local OperationLog* recording = nullptr;
thread_local bool in_stream_op = false;

// guarded() for an operation that puts work on a context's stream: on a CUDA context its buffer
// arguments are recorded in the backend's operation log (op_log.h), whatever role they have.
// Every operation that enqueues device work must run through here.
template <class F>
int stream_op(const char* op, F&& body) {
    in_stream_op = true;
    recording = nullptr;
    bool completed = false;
    const int status = guarded(op, [&] {
        body();
        completed = true;
    });
    if (recording != nullptr) recording->finish(completed);
    in_stream_op = false;
    recording = nullptr;
    return status;
}

[[noreturn]] void invalid(const std::string& message) { throw Error(LOWBIT_ERR_INVALID_ARGUMENT, message); }

const char* dtype_name(int t) {
    switch (t) {
        case LOWBIT_F32: return "F32";
        case LOWBIT_F16: return "F16";
        case LOWBIT_BF16: return "BF16";
        case LOWBIT_S8: return "S8";
        case LOWBIT_S4: return "S4";
        case LOWBIT_S32: return "S32";
        default: return "unknown dtype";
    }
}

int64_t dtype_bytes(int t) {
    switch (t) {
        case LOWBIT_F32: case LOWBIT_S32: return 4;
        case LOWBIT_F16: case LOWBIT_BF16: return 2;
        case LOWBIT_S8: return 1;
        default: return 0;
    }
}

constexpr int64_t kMaxDim = int64_t(1) << 40;

void check_dim(const char* name, int64_t v) {
    if (v <= 0 || v > kMaxDim) {
        std::ostringstream s;
        s << name << " must be in 1.." << kMaxDim << ", got " << v;
        invalid(s.str());
    }
}

// Bytes a rows x cols matrix of dtype t with leading dimension ld spans.
int64_t matrix_bytes(int t, int64_t rows, int64_t cols, int64_t ld) {
    __int128 elems = static_cast<__int128>(rows - 1) * ld + cols;
    __int128 bytes = t == LOWBIT_S4 ? (elems + 1) / 2 : elems * dtype_bytes(t);
    if (bytes > (static_cast<__int128>(1) << 62)) invalid("matrix too large");
    return static_cast<int64_t>(bytes);
}

lowbit_buffer* check_buffer(const char* name, const lowbit_buffer* buf, const lowbit_context* ctx) {
    if (buf == nullptr) invalid(std::string("buffer ") + name + " is null");
    if (buf->ptr == nullptr) invalid(std::string("buffer ") + name + " has been freed");
    if (ctx != nullptr && buf->backend != ctx->backend)
        invalid(std::string("buffer ") + name + " belongs to another context");
    if (in_stream_op && buf->backend->kind() == LOWBIT_BACKEND_CUDA) {
        if (recording == nullptr) {
            recording = &buf->backend->op_log;
            recording->begin();
        }
        if (recording == &buf->backend->op_log) recording->use(buf->ptr);
    }
    return const_cast<lowbit_buffer*>(buf);
}

void check_matrix(const char* name, const lowbit_buffer* buf, const lowbit_context* ctx, int t,
                  int64_t rows, int64_t cols, int64_t ld) {
    check_buffer(name, buf, ctx);
    if (ld < cols) {
        std::ostringstream s;
        s << "leading dimension of " << name << " (" << ld << ") is smaller than its row length (" << cols << ")";
        invalid(s.str());
    }
    if (t == LOWBIT_S4 && ld % 2 != 0) {
        std::ostringstream s;
        s << "leading dimension of packed S4 " << name << " must be even, got " << ld;
        invalid(s.str());
    }
    int64_t need = matrix_bytes(t, rows, cols, ld);
    if (need > buf->bytes) {
        std::ostringstream s;
        s << "buffer " << name << " holds " << buf->bytes << " bytes, but a " << rows << " x " << cols << " "
          << dtype_name(t) << " matrix with ld " << ld << " needs " << need;
        invalid(s.str());
    }
}

void check_vector(const char* name, const lowbit_buffer* buf, const lowbit_context* ctx, int64_t count,
                  int64_t elem_bytes) {
    check_buffer(name, buf, ctx);
    if (count * elem_bytes > buf->bytes) {
        std::ostringstream s;
        s << "buffer " << name << " holds " << buf->bytes << " bytes, but " << count << " entries need "
          << count * elem_bytes;
        invalid(s.str());
    }
}

lowbit_context* check_context(const lowbit_context* ctx) {
    if (ctx == nullptr || !ctx->backend) invalid("context is null");
    return const_cast<lowbit_context*>(ctx);
}

void check_range(const char* name, const lowbit_buffer* buf, int64_t offset, int64_t bytes) {
    if (offset < 0 || bytes < 0 || offset > buf->bytes || bytes > buf->bytes - offset) {
        std::ostringstream s;
        s << "range [" << offset << ", " << offset << " + " << bytes << ") lies outside buffer " << name << " of "
          << buf->bytes << " bytes";
        invalid(s.str());
    }
}

void check_scale_counts(int64_t a_count, int64_t m, int64_t b_count, int64_t n) {
    if (a_count != 1 && a_count != m) {
        std::ostringstream s;
        s << "a_scale_count must be 1 or M=" << m << ", got " << a_count;
        invalid(s.str());
    }
    if (b_count != 1 && b_count != n) {
        std::ostringstream s;
        s << "b_scale_count must be 1 or N=" << n << ", got " << b_count;
        invalid(s.str());
    }
}

void check_float_out(int out_type) {
    if (out_type != LOWBIT_F32 && out_type != LOWBIT_F16 && out_type != LOWBIT_BF16)
        invalid(std::string("output dtype must be F32, F16 or BF16, got ") + dtype_name(out_type));
}

void check_operand_types(int a_type, int b_type) {
    bool ok = (a_type == LOWBIT_S8 && b_type == LOWBIT_S8) || (a_type == LOWBIT_S8 && b_type == LOWBIT_S4) ||
              (a_type == LOWBIT_S4 && b_type == LOWBIT_S4);
    if (!ok)
        invalid(std::string("unsupported operand dtypes (") + dtype_name(a_type) + ", " + dtype_name(b_type) +
                "): use (S8, S8), (S8, S4) or (S4, S4)");
}

// The DGQ weight operands of lowbit_dgq_check and lowbit_gemm_dgq: codes,
// group scales and (optional) zero points; returns the number of groups per row.
int64_t check_dgq_weights(const lowbit_context* ctx, const lowbit_buffer* w, int64_t ldw,
                          const lowbit_buffer* group_scales, const lowbit_buffer* zero_points, int64_t group,
                          int64_t n, int64_t k) {
    check_dim("N", n);
    check_dim("K", k);
    if (group <= 0 || group > k || k % group != 0) {
        std::ostringstream s;
        s << "group size " << group << " does not divide K=" << k;
        invalid(s.str());
    }
    check_matrix("w", w, ctx, LOWBIT_S4, n, k, ldw);
    const int64_t groups = k / group;
    check_vector("group_scales", group_scales, ctx, n * groups, 1);
    if (zero_points != nullptr) check_vector("zero_points", zero_points, ctx, n * groups, 1);
    return groups;
}

// lowbit_gemm_dequant's checks, shared with lowbit_gemm_dequant_config.
GemmArgs gemm_dequant_args(lowbit_context* ctx, int a_type, const lowbit_buffer* a, int64_t lda, int b_type,
                           const lowbit_buffer* b, int64_t ldb, int64_t m, int64_t n, int64_t k,
                           const lowbit_buffer* a_scales, int64_t a_scale_count, const lowbit_buffer* b_scales,
                           int64_t b_scale_count, const lowbit_buffer* bias, int out_type, lowbit_buffer* out,
                           int64_t ldo) {
    check_context(ctx);
    check_dim("M", m);
    check_dim("N", n);
    check_dim("K", k);
    check_operand_types(a_type, b_type);
    check_float_out(out_type);
    check_scale_counts(a_scale_count, m, b_scale_count, n);
    check_matrix("a", a, ctx, a_type, m, k, lda);
    check_matrix("b", b, ctx, b_type, n, k, ldb);
    check_matrix("out", out, ctx, out_type, m, n, ldo);
    check_vector("a_scales", a_scales, ctx, a_scale_count, 4);
    check_vector("b_scales", b_scales, ctx, b_scale_count, 4);
    if (bias != nullptr) check_vector("bias", bias, ctx, n, 4);
    return GemmArgs{a_type, a->ptr, lda, b_type, b->ptr, ldb, m, n, k,
                    static_cast<const float*>(a_scales->ptr), a_scale_count,
                    static_cast<const float*>(b_scales->ptr), b_scale_count,
                    bias == nullptr ? nullptr : static_cast<const float*>(bias->ptr),
                    out_type, out->ptr, ldo};
}

// Shared by lowbit_quantize and lowbit_flatten_quantize: x has src_cols
// columns, the quantized matrix out_cols.
void run_quantize(lowbit_context* ctx, const lowbit_buffer* x, int x_type, int64_t rows, int64_t src_cols,
                  int64_t ldx, const lowbit_buffer* src_index, const lowbit_buffer* src_mult, int64_t out_cols,
                  int bits, int granularity, int64_t group, int scales_given, lowbit_buffer* q, int64_t ldq,
                  lowbit_buffer* scales, int64_t identity_prefix = 0) {
    check_context(ctx);
    check_dim("rows", rows);
    check_dim("cols", src_cols);
    check_dim("k_out", out_cols);
    if (x_type != LOWBIT_F32 && x_type != LOWBIT_F16 && x_type != LOWBIT_BF16)
        invalid(std::string("input dtype must be F32, F16 or BF16, got ") + dtype_name(x_type));
    if (bits != 8 && bits != 4) invalid("bits must be 8 or 4, got " + std::to_string(bits));
    int q_type = bits == 8 ? LOWBIT_S8 : LOWBIT_S4;
    check_matrix("x", x, ctx, x_type, rows, src_cols, ldx);
    check_matrix("q", q, ctx, q_type, rows, out_cols, ldq);
    int64_t n_scales;
    switch (granularity) {
        case LOWBIT_PER_TENSOR: n_scales = 1; break;
        case LOWBIT_PER_ROW: n_scales = rows; break;
        case LOWBIT_PER_COLUMN: n_scales = out_cols; break;
        case LOWBIT_PER_GROUP:
            if (group <= 0 || out_cols % group != 0)
                invalid("group size " + std::to_string(group) + " does not divide cols=" + std::to_string(out_cols));
            n_scales = rows * (out_cols / group);
            break;
        default: invalid("unknown granularity " + std::to_string(granularity));
    }
    check_vector("scales", scales, ctx, n_scales, 4);
    QuantizeArgs a{x->ptr, x_type, rows, out_cols, ldx, bits, granularity, group, scales_given != 0,
                   q->ptr, ldq, static_cast<float*>(scales->ptr)};
    if (src_index != nullptr || src_mult != nullptr) {
        check_vector("src_index", src_index, ctx, out_cols, 4);
        check_vector("src_mult", src_mult, ctx, out_cols, 4);
        a.src_index = static_cast<const int32_t*>(src_index->ptr);
        a.src_mult = static_cast<const float*>(src_mult->ptr);
    }
    a.src_cols = src_cols;
    a.identity_prefix = identity_prefix;
    ctx->backend->quantize(a);
}

// ---- bit-plane operands (lowbit_bitplane_*) ----------------------------------

constexpr int64_t kMaxBitplaneK = int64_t(1) << 23;  // int32 row sums, exact int64 products

void check_bitplane_k(int64_t k) {
    if (k <= 0 || k > kMaxBitplaneK) {
        std::ostringstream s;
        s << "K must be in 1.." << kMaxBitplaneK << " for bit-plane operands, got " << k;
        invalid(s.str());
    }
}

void check_plane_bits(const char* name, int bits, int lo) {
    if (bits < lo || bits > 8) {
        std::ostringstream s;
        s << name << " must be in " << lo << "..8, got " << bits;
        invalid(s.str());
    }
}

// A rows x k operand of `bits` planes with leading dimension ldp words.
void check_planes(const char* name, const lowbit_buffer* buf, const lowbit_context* ctx, int64_t rows, int64_t k,
                  int bits, int64_t ldp) {
    check_buffer(name, buf, ctx);
    const int64_t words = (k + 63) / 64;
    if (ldp < words || ldp % 2 != 0 || ldp > kMaxDim) {
        std::ostringstream s;
        s << "plane leading dimension of " << name << " must be even and >= ceil(K/64) = " << words << " words, got "
          << ldp;
        invalid(s.str());
    }
    __int128 need = static_cast<__int128>(rows) * bits * ldp * 8;
    if (need > buf->bytes) {
        std::ostringstream s;
        s << "buffer " << name << " holds " << buf->bytes << " bytes, but " << rows << " rows x " << bits
          << " planes x " << ldp << " words need " << static_cast<long long>(need);
        invalid(s.str());
    }
}

// A Kronecker factor size (n1 or n2 of lowbit_kron_quantize).
void check_kron_factor(const char* name, int64_t v) {
    if (v < 1 || v > LOWBIT_KRON_MAX_FACTOR) {
        std::ostringstream s;
        s << name << " must be in 1.." << LOWBIT_KRON_MAX_FACTOR << ", got " << v;
        invalid(s.str());
    }
}

// A learned clip factor: a sigmoid, so in (0, 1]; NaN fails both comparisons.
void check_clip(const char* name, float v) {
    if (!(v > 0.0f && v <= 1.0f)) {
        std::ostringstream s;
        s << name << " must be in (0, 1], got " << v;
        invalid(s.str());
    }
}

}  // namespace
}  // namespace lowbit

using namespace lowbit;

extern "C" {

const char* lowbit_last_error(void) { return last_error.c_str(); }

const char* lowbit_version(void) { return LOWBIT_VERSION_STRING; }

const char* lowbit_build_info(void) {
    static const std::string info = [] {
        std::ostringstream s;
        s << "lowbit " << LOWBIT_VERSION_STRING << "; C++ "
#if defined(__clang__)
          << "clang " << __clang_major__ << "." << __clang_minor__
#elif defined(__GNUC__)
          << "gcc " << __GNUC__ << "." << __GNUC_MINOR__
#endif
          << "; CPU ISA best " << cpu_isa_best() << "; " << cuda_build_info();
        return s.str();
    }();
    return info.c_str();
}

int lowbit_cpu_isa_best(void) { return cpu_isa_best(); }

int lowbit_cuda_device_count(int* count) {
    return guarded("lowbit_cuda_device_count", [&] {
        if (count == nullptr) invalid("count is null");
        *count = cuda_device_count();
    });
}

int lowbit_context_create(int backend, int device, lowbit_context** out) {
    return guarded("lowbit_context_create", [&] {
        if (out == nullptr) invalid("out is null");
        *out = nullptr;
        auto ctx = std::make_unique<lowbit_context>();
        if (backend == LOWBIT_BACKEND_CPU) {
            ctx->backend = make_cpu_backend();
        } else if (backend == LOWBIT_BACKEND_CUDA) {
            if (device < 0) invalid("CUDA device index must be >= 0, got " + std::to_string(device));
            ctx->backend = make_cuda_backend(device);
        } else {
            invalid("unknown backend " + std::to_string(backend) + " (1 = CPU, 2 = CUDA)");
        }
        *out = ctx.release();
    });
}

void lowbit_context_destroy(lowbit_context* ctx) { delete ctx; }

int lowbit_context_backend(const lowbit_context* ctx) { return ctx == nullptr ? 0 : ctx->backend->kind(); }

int lowbit_context_set_cpu_isa(lowbit_context* ctx, int isa) {
    return guarded("lowbit_context_set_cpu_isa", [&] {
        check_context(ctx);
        if (isa < LOWBIT_ISA_SCALAR || isa > LOWBIT_ISA_AVX512_VNNI) invalid("unknown ISA level " + std::to_string(isa));
        if (isa > cpu_isa_best())
            throw Error(LOWBIT_ERR_UNSUPPORTED, "ISA level " + std::to_string(isa) + " is not supported by this CPU (best " +
                                                    std::to_string(cpu_isa_best()) + ")");
        ctx->backend->set_cpu_isa(isa);
    });
}

int lowbit_context_set_threads(lowbit_context* ctx, int threads) {
    return guarded("lowbit_context_set_threads", [&] {
        check_context(ctx);
        if (threads < 0 || threads > 4096) invalid("threads must be in 0..4096, got " + std::to_string(threads));
        ctx->backend->set_threads(threads);
    });
}

int lowbit_context_synchronize(lowbit_context* ctx) {
    return guarded("lowbit_context_synchronize", [&] {
        check_context(ctx);
        ctx->backend->synchronize();
    });
}

int lowbit_buffer_alloc(lowbit_context* ctx, int64_t bytes, lowbit_buffer** out) {
    return guarded("lowbit_buffer_alloc", [&] {
        check_context(ctx);
        if (out == nullptr) invalid("out is null");
        *out = nullptr;
        if (bytes <= 0 || bytes > (int64_t(1) << 50)) invalid("bytes must be in 1..2^50, got " + std::to_string(bytes));
        auto buf = std::make_unique<lowbit_buffer>();
        buf->backend = ctx->backend;
        buf->bytes = bytes;
        buf->ptr = ctx->backend->alloc(bytes);
        *out = buf.release();
    });
}

void lowbit_buffer_free(lowbit_buffer* buf) {
    if (buf == nullptr) return;
    if (buf->ptr != nullptr) buf->backend->release(buf->ptr);
    buf->ptr = nullptr;
    delete buf;
}

int64_t lowbit_buffer_bytes(const lowbit_buffer* buf) { return buf == nullptr ? 0 : buf->bytes; }

int lowbit_buffer_write(lowbit_buffer* dst, int64_t dst_offset_bytes, const void* src, int64_t bytes) {
    return stream_op("lowbit_buffer_write", [&] {
        check_buffer("dst", dst, nullptr);
        if (src == nullptr) invalid("source pointer is null");
        check_range("dst", dst, dst_offset_bytes, bytes);
        if (bytes > 0) dst->backend->write(static_cast<char*>(dst->ptr) + dst_offset_bytes, src, bytes);
    });
}

int lowbit_buffer_read(const lowbit_buffer* src, int64_t src_offset_bytes, void* dst, int64_t bytes) {
    return guarded("lowbit_buffer_read", [&] {
        check_buffer("src", src, nullptr);
        if (dst == nullptr) invalid("destination pointer is null");
        check_range("src", src, src_offset_bytes, bytes);
        if (bytes > 0) src->backend->read(dst, static_cast<const char*>(src->ptr) + src_offset_bytes, bytes);
    });
}

int lowbit_buffer_copy(lowbit_buffer* dst, int64_t dst_offset_bytes, const lowbit_buffer* src,
                       int64_t src_offset_bytes, int64_t bytes) {
    return stream_op("lowbit_buffer_copy", [&] {
        check_buffer("dst", dst, nullptr);
        check_buffer("src", src, nullptr);
        if (dst->backend != src->backend) invalid("src and dst belong to different contexts");
        check_range("dst", dst, dst_offset_bytes, bytes);
        check_range("src", src, src_offset_bytes, bytes);
        if (dst == src && dst_offset_bytes < src_offset_bytes + bytes && src_offset_bytes < dst_offset_bytes + bytes)
            invalid("source and destination ranges overlap");
        if (bytes > 0)
            dst->backend->copy(static_cast<char*>(dst->ptr) + dst_offset_bytes,
                               static_cast<const char*>(src->ptr) + src_offset_bytes, bytes);
    });
}

int lowbit_quantize(lowbit_context* ctx, const lowbit_buffer* x, int x_type, int64_t rows, int64_t cols, int64_t ldx,
                    int bits, int granularity, int64_t group, int scales_given, lowbit_buffer* q, int64_t ldq,
                    lowbit_buffer* scales) {
    return stream_op("lowbit_quantize", [&] {
        run_quantize(ctx, x, x_type, rows, cols, ldx, nullptr, nullptr, cols, bits, granularity, group, scales_given,
                     q, ldq, scales);
    });
}

int lowbit_flatten_quantize(lowbit_context* ctx, const lowbit_buffer* x, int x_type, int64_t rows, int64_t cols,
                            int64_t ldx, const lowbit_buffer* src_index, const lowbit_buffer* src_mult, int64_t k_out,
                            int64_t identity_prefix, int bits, int granularity, int64_t group, int scales_given, lowbit_buffer* q,
                            int64_t ldq, lowbit_buffer* scales) {
    return stream_op("lowbit_flatten_quantize", [&] {
        if (src_index == nullptr) invalid("buffer src_index is null");
        if (src_mult == nullptr) invalid("buffer src_mult is null");
        if (identity_prefix < 0 || identity_prefix > cols || identity_prefix > k_out)
            invalid("identity_prefix " + std::to_string(identity_prefix) + " is outside [0, min(cols=" +
                    std::to_string(cols) + ", k_out=" + std::to_string(k_out) + ")]");
        run_quantize(ctx, x, x_type, rows, cols, ldx, src_index, src_mult, k_out, bits, granularity, group,
                     scales_given, q, ldq, scales, identity_prefix);
    });
}

int lowbit_gemm_s32(lowbit_context* ctx, int a_type, const lowbit_buffer* a, int64_t lda, int b_type,
                    const lowbit_buffer* b, int64_t ldb, int64_t m, int64_t n, int64_t k, lowbit_buffer* c,
                    int64_t ldc) {
    return stream_op("lowbit_gemm_s32", [&] {
        check_context(ctx);
        check_dim("M", m);
        check_dim("N", n);
        check_dim("K", k);
        check_operand_types(a_type, b_type);
        check_matrix("a", a, ctx, a_type, m, k, lda);
        check_matrix("b", b, ctx, b_type, n, k, ldb);
        check_matrix("c", c, ctx, LOWBIT_S32, m, n, ldc);
        GemmArgs g{a_type, a->ptr, lda, b_type, b->ptr, ldb, m, n, k,
                   nullptr, 0, nullptr, 0, nullptr, LOWBIT_S32, c->ptr, ldc};
        ctx->backend->gemm(g);
    });
}

int lowbit_gemm_dequant(lowbit_context* ctx, int a_type, const lowbit_buffer* a, int64_t lda, int b_type,
                        const lowbit_buffer* b, int64_t ldb, int64_t m, int64_t n, int64_t k,
                        const lowbit_buffer* a_scales, int64_t a_scale_count, const lowbit_buffer* b_scales,
                        int64_t b_scale_count, const lowbit_buffer* bias, int out_type, lowbit_buffer* out,
                        int64_t ldo) {
    return stream_op("lowbit_gemm_dequant", [&] {
        GemmArgs g = gemm_dequant_args(ctx, a_type, a, lda, b_type, b, ldb, m, n, k, a_scales, a_scale_count,
                                       b_scales, b_scale_count, bias, out_type, out, ldo);
        ctx->backend->gemm(g);
    });
}

int lowbit_gemm_config_count(void) { return gemm_config_count(); }

const char* lowbit_gemm_config_name(int config) {
    return config >= 0 && config < gemm_config_count() ? gemm_config_name(config) : nullptr;
}

int lowbit_gemm_config_select(lowbit_context* ctx, int a_type, int64_t lda, int b_type, int64_t ldb, int64_t m,
                              int64_t n, int64_t k, int out_type, int64_t ldo, int* config) {
    return guarded("lowbit_gemm_config_select", [&] {
        check_context(ctx);
        if (config == nullptr) invalid("config is null");
        check_dim("M", m);
        check_dim("N", n);
        check_dim("K", k);
        check_operand_types(a_type, b_type);
        check_float_out(out_type);
        if (lda < k || ldb < k || ldo < n) invalid("leading dimensions must be >= the row lengths (lda, ldb >= K, ldo >= N)");
        GemmArgs g{a_type, nullptr, lda, b_type, nullptr, ldb, m, n, k,
                   nullptr, 1, nullptr, 1, nullptr, out_type, nullptr, ldo};
        *config = ctx->backend->gemm_choice(g);
    });
}

int lowbit_gemm_dequant_config(lowbit_context* ctx, int config, int a_type, const lowbit_buffer* a, int64_t lda,
                               int b_type, const lowbit_buffer* b, int64_t ldb, int64_t m, int64_t n, int64_t k,
                               const lowbit_buffer* a_scales, int64_t a_scale_count, const lowbit_buffer* b_scales,
                               int64_t b_scale_count, const lowbit_buffer* bias, int out_type, lowbit_buffer* out,
                               int64_t ldo) {
    return stream_op("lowbit_gemm_dequant_config", [&] {
        if ((config < LOWBIT_GEMM_PORTABLE && config != LOWBIT_GEMM_SM80_S4 && config != LOWBIT_GEMM_SM90_W4) ||
            config >= gemm_config_count()) {
            std::ostringstream s;
            s << "config must be LOWBIT_GEMM_AUTO (-1), LOWBIT_GEMM_PORTABLE (-2), LOWBIT_GEMM_SM80_S4 (-3), "
                 "LOWBIT_GEMM_SM90_W4 (-4) or an "
                 "index in 0.."
              << gemm_config_count() - 1 << " (this build has " << gemm_config_count() << " tuned configurations), got "
              << config;
            invalid(s.str());
        }
        GemmArgs g = gemm_dequant_args(ctx, a_type, a, lda, b_type, b, ldb, m, n, k, a_scales, a_scale_count,
                                       b_scales, b_scale_count, bias, out_type, out, ldo);
        ctx->backend->gemm_config(g, config);
    });
}

int lowbit_gemm_config_binary(lowbit_context* ctx, int config, int* ptx_arch, int* sass_arch, int* jit) {
    return guarded("lowbit_gemm_config_binary", [&] {
        check_context(ctx);
        if (ptx_arch == nullptr || sass_arch == nullptr || jit == nullptr)
            invalid("ptx_arch, sass_arch and jit must not be null");
        ctx->backend->gemm_config_binary(config, ptx_arch, sass_arch, jit);
    });
}

int lowbit_gemm_tuning_load(lowbit_context* ctx, const char* table) {
    return guarded("lowbit_gemm_tuning_load", [&] {
        check_context(ctx);
        if (table == nullptr) invalid("table is null");
        ctx->backend->set_gemm_table(GemmTable::parse(table, "(given text)"));
    });
}

int lowbit_dense_gemm(lowbit_context* ctx, int dtype, const lowbit_buffer* a, const lowbit_buffer* b, int b_layout,
                      lowbit_buffer* out, int64_t m, int64_t n, int64_t k, int accumulate) {
    return stream_op("lowbit_dense_gemm", [&] {
        check_context(ctx);
        if (dtype != LOWBIT_F32 && dtype != LOWBIT_F16 && dtype != LOWBIT_BF16)
            invalid(std::string("the dense GEMM takes F32, F16 or BF16 operands, got ") + dtype_name(dtype));
        if (b_layout != LOWBIT_B_NK && b_layout != LOWBIT_B_KN)
            invalid("b_layout must be LOWBIT_B_NK (0) or LOWBIT_B_KN (1), got " + std::to_string(b_layout));
        check_dim("M", m);
        check_dim("N", n);
        check_dim("K", k);
        if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) invalid("the dense GEMM takes M, N and K below 2^31");
        check_matrix("a", a, ctx, dtype, m, k, k);
        if (b_layout == LOWBIT_B_NK)
            check_matrix("b", b, ctx, dtype, n, k, k);
        else
            check_matrix("b", b, ctx, dtype, k, n, n);
        check_matrix("out", out, ctx, dtype, m, n, n);
        ctx->backend->dense_gemm(
            DenseGemmArgs{dtype, a->ptr, b->ptr, b_layout == LOWBIT_B_KN, out->ptr, m, n, k, accumulate != 0});
    });
}

int lowbit_dequantize_s32(lowbit_context* ctx, const lowbit_buffer* acc, int64_t m, int64_t n, int64_t ldacc,
                          const lowbit_buffer* a_scales, int64_t a_scale_count, const lowbit_buffer* b_scales,
                          int64_t b_scale_count, const lowbit_buffer* bias, int out_type, lowbit_buffer* out,
                          int64_t ldo) {
    return stream_op("lowbit_dequantize_s32", [&] {
        check_context(ctx);
        check_dim("M", m);
        check_dim("N", n);
        check_float_out(out_type);
        check_scale_counts(a_scale_count, m, b_scale_count, n);
        check_matrix("acc", acc, ctx, LOWBIT_S32, m, n, ldacc);
        check_matrix("out", out, ctx, out_type, m, n, ldo);
        check_vector("a_scales", a_scales, ctx, a_scale_count, 4);
        check_vector("b_scales", b_scales, ctx, b_scale_count, 4);
        if (bias != nullptr) check_vector("bias", bias, ctx, n, 4);
        DequantArgs d{static_cast<const int32_t*>(acc->ptr), m, n, ldacc,
                      static_cast<const float*>(a_scales->ptr), a_scale_count,
                      static_cast<const float*>(b_scales->ptr), b_scale_count,
                      bias == nullptr ? nullptr : static_cast<const float*>(bias->ptr),
                      out_type, out->ptr, ldo};
        ctx->backend->dequantize(d);
    });
}

int lowbit_dgq_check(lowbit_context* ctx, const lowbit_buffer* w, int64_t ldw, const lowbit_buffer* group_scales,
                     const lowbit_buffer* zero_points, int64_t group, int64_t n, int64_t k) {
    return stream_op("lowbit_dgq_check", [&] {
        check_context(ctx);
        const int64_t groups = check_dgq_weights(ctx, w, ldw, group_scales, zero_points, group, n, k);
        const int64_t w_bytes = matrix_bytes(LOWBIT_S4, n, k, ldw);
        const int64_t g_bytes = n * groups;
        if (ctx->backend->kind() == LOWBIT_BACKEND_CPU) {
            dgq_check_host(static_cast<const uint8_t*>(w->ptr), ldw, static_cast<const uint8_t*>(group_scales->ptr),
                           zero_points == nullptr ? nullptr : static_cast<const int8_t*>(zero_points->ptr), group, n,
                           k);
            return;
        }
        // Device memory: check host copies.
        std::unique_ptr<uint8_t[]> hw(new uint8_t[w_bytes]), hs(new uint8_t[g_bytes]);
        std::unique_ptr<int8_t[]> hz(zero_points == nullptr ? nullptr : new int8_t[g_bytes]);
        ctx->backend->read(hw.get(), w->ptr, w_bytes);
        ctx->backend->read(hs.get(), group_scales->ptr, g_bytes);
        if (hz) ctx->backend->read(hz.get(), zero_points->ptr, g_bytes);
        dgq_check_host(hw.get(), ldw, hs.get(), hz.get(), group, n, k);
    });
}

int lowbit_gemm_dgq(lowbit_context* ctx, const lowbit_buffer* a, int64_t lda, const lowbit_buffer* w, int64_t ldw,
                    const lowbit_buffer* group_scales, const lowbit_buffer* zero_points, int64_t group, int64_t m,
                    int64_t n, int64_t k, const lowbit_buffer* a_scales, int64_t a_scale_count,
                    const lowbit_buffer* channel_scales, const lowbit_buffer* bias, int out_type, lowbit_buffer* out,
                    int64_t ldo) {
    return stream_op("lowbit_gemm_dgq", [&] {
        check_context(ctx);
        check_dim("M", m);
        check_dgq_weights(ctx, w, ldw, group_scales, zero_points, group, n, k);
        check_float_out(out_type);
        check_scale_counts(a_scale_count, m, n, n);
        check_matrix("a", a, ctx, LOWBIT_S8, m, k, lda);
        check_matrix("out", out, ctx, out_type, m, n, ldo);
        check_vector("a_scales", a_scales, ctx, a_scale_count, 4);
        check_vector("channel_scales", channel_scales, ctx, n, 4);
        if (bias != nullptr) check_vector("bias", bias, ctx, n, 4);
        DgqGemmArgs g{static_cast<const int8_t*>(a->ptr), lda,
                      static_cast<const uint8_t*>(w->ptr), ldw,
                      static_cast<const uint8_t*>(group_scales->ptr),
                      zero_points == nullptr ? nullptr : static_cast<const int8_t*>(zero_points->ptr),
                      group, m, n, k,
                      static_cast<const float*>(a_scales->ptr), a_scale_count,
                      static_cast<const float*>(channel_scales->ptr),
                      bias == nullptr ? nullptr : static_cast<const float*>(bias->ptr),
                      out_type, out->ptr, ldo};
        ctx->backend->gemm_dgq(g);
    });
}

int lowbit_kron_quantize(lowbit_context* ctx, const lowbit_buffer* x, int x_type, int64_t rows, int64_t ldx,
                         const lowbit_buffer* p1, int64_t n1, const lowbit_buffer* p2, int64_t n2, float clip_max,
                         float clip_min, int bits, lowbit_buffer* q, int64_t ldq, lowbit_buffer* scales,
                         int precision) {
    return stream_op("lowbit_kron_quantize", [&] {
        check_context(ctx);
        check_dim("rows", rows);
        check_kron_factor("n1", n1);
        check_kron_factor("n2", n2);
        if (x_type != LOWBIT_F32 && x_type != LOWBIT_F16 && x_type != LOWBIT_BF16)
            invalid(std::string("input dtype must be F32, F16 or BF16, got ") + dtype_name(x_type));
        if (bits != 8 && bits != 4) invalid("bits must be 8 or 4, got " + std::to_string(bits));
        if (precision != LOWBIT_KRON_EXACT && precision != LOWBIT_KRON_TF32 && precision != LOWBIT_KRON_HALF)
            invalid("precision must be LOWBIT_KRON_EXACT (0), LOWBIT_KRON_TF32 (1) or LOWBIT_KRON_HALF (2), got " +
                    std::to_string(precision));
        check_clip("clip_max", clip_max);
        check_clip("clip_min", clip_min);
        const int64_t n = n1 * n2;
        check_matrix("x", x, ctx, x_type, rows, n, ldx);
        check_matrix("p1", p1, ctx, LOWBIT_F32, n1, n1, n1);
        check_matrix("p2", p2, ctx, LOWBIT_F32, n2, n2, n2);
        check_matrix("q", q, ctx, bits == 8 ? LOWBIT_S8 : LOWBIT_S4, rows, n, ldq);
        check_vector("scales", scales, ctx, rows, 4);
        KronQuantizeArgs a{x->ptr, x_type, rows, ldx,
                           static_cast<const float*>(p1->ptr), static_cast<int>(n1),
                           static_cast<const float*>(p2->ptr), static_cast<int>(n2),
                           clip_max, clip_min, bits, q->ptr, ldq, static_cast<float*>(scales->ptr), precision};
        ctx->backend->kron_quantize(a);
    });
}

int64_t lowbit_bitplane_ld(int64_t k) { return k <= 0 ? 0 : 2 * ((k + 127) / 128); }

int lowbit_bitplane_quantize(lowbit_context* ctx, const lowbit_buffer* x, int x_type, int64_t rows, int64_t cols,
                             int64_t ldx, int bits, int asymmetric, lowbit_buffer* planes, int64_t ldp,
                             lowbit_buffer* scales, lowbit_buffer* zeros, lowbit_buffer* sums) {
    return stream_op("lowbit_bitplane_quantize", [&] {
        check_context(ctx);
        check_dim("rows", rows);
        check_bitplane_k(cols);
        if (x_type != LOWBIT_F32 && x_type != LOWBIT_F16 && x_type != LOWBIT_BF16)
            invalid(std::string("input dtype must be F32, F16 or BF16, got ") + dtype_name(x_type));
        check_plane_bits(asymmetric ? "bits (asymmetric)" : "bits (symmetric: a sign and a magnitude bit at least)",
                         bits, asymmetric ? 1 : 2);
        check_matrix("x", x, ctx, x_type, rows, cols, ldx);
        check_planes("planes", planes, ctx, rows, cols, bits, ldp);
        check_vector("scales", scales, ctx, rows, 4);
        check_vector("sums", sums, ctx, rows, 4);
        if (asymmetric) {
            if (zeros == nullptr) invalid("asymmetric quantization needs a zeros buffer (S32 x rows)");
            check_vector("zeros", zeros, ctx, rows, 4);
        } else if (zeros != nullptr) {
            invalid("symmetric quantization has no zero points: pass zeros = NULL");
        }
        BitplaneQuantizeArgs a{x->ptr, x_type, rows, cols, ldx, bits, asymmetric != 0,
                               static_cast<uint64_t*>(planes->ptr), ldp, static_cast<float*>(scales->ptr),
                               zeros == nullptr ? nullptr : static_cast<int32_t*>(zeros->ptr),
                               static_cast<int32_t*>(sums->ptr)};
        ctx->backend->bitplane_quantize(a);
    });
}

int lowbit_bitplane_gemm(lowbit_context* ctx, const lowbit_buffer* x, int x_bits, int x_signed, int64_t ldx,
                         const lowbit_buffer* x_zeros, const lowbit_buffer* x_sums, const lowbit_buffer* w,
                         int w_bits, int w_signed, int64_t ldw, const lowbit_buffer* w_zeros,
                         const lowbit_buffer* w_sums, int64_t m, int64_t n, int64_t k,
                         const lowbit_buffer* x_scales, int64_t x_scale_count, const lowbit_buffer* w_scales,
                         int64_t w_scale_count, const lowbit_buffer* bias, int out_type, lowbit_buffer* out,
                         int64_t ldo) {
    return stream_op("lowbit_bitplane_gemm", [&] {
        check_context(ctx);
        check_dim("M", m);
        check_dim("N", n);
        check_bitplane_k(k);
        check_plane_bits("x_bits", x_bits, 1);
        check_plane_bits("w_bits", w_bits, 1);
        check_planes("x", x, ctx, m, k, x_bits, ldx);
        check_planes("w", w, ctx, n, k, w_bits, ldw);
        if (x_zeros != nullptr) check_vector("x_zeros", x_zeros, ctx, m, 4);
        if (w_zeros != nullptr) check_vector("w_zeros", w_zeros, ctx, n, 4);
        if (w_zeros != nullptr) {
            if (x_sums == nullptr) invalid("x_sums is null, but w has zero points (its term needs the row sums of x)");
            check_vector("x_sums", x_sums, ctx, m, 4);
        }
        if (x_zeros != nullptr) {
            if (w_sums == nullptr) invalid("w_sums is null, but x has zero points (its term needs the row sums of w)");
            check_vector("w_sums", w_sums, ctx, n, 4);
        }
        const bool raw = out_type == LOWBIT_S32;
        if (!raw) {
            check_float_out(out_type);
            check_scale_counts(x_scale_count, m, w_scale_count, n);
            check_vector("x_scales", x_scales, ctx, x_scale_count, 4);
            check_vector("w_scales", w_scales, ctx, w_scale_count, 4);
            if (bias != nullptr) check_vector("bias", bias, ctx, n, 4);
        }
        check_matrix("out", out, ctx, out_type, m, n, ldo);
        auto s32 = [](const lowbit_buffer* b) {
            return b == nullptr ? nullptr : static_cast<const int32_t*>(b->ptr);
        };
        auto f32 = [raw](const lowbit_buffer* b) {
            return raw || b == nullptr ? nullptr : static_cast<const float*>(b->ptr);
        };
        BitplaneGemmArgs g{static_cast<const uint64_t*>(x->ptr), x_bits, x_signed != 0, ldx,
                           s32(x_zeros), w_zeros == nullptr ? nullptr : s32(x_sums),
                           static_cast<const uint64_t*>(w->ptr), w_bits, w_signed != 0, ldw,
                           s32(w_zeros), x_zeros == nullptr ? nullptr : s32(w_sums),
                           m, n, k,
                           f32(x_scales), raw ? 0 : x_scale_count, f32(w_scales), raw ? 0 : w_scale_count,
                           f32(bias), out_type, out->ptr, ldo};
        ctx->backend->bitplane_gemm(g);
    });
}

}  // extern "C"
