/*
 * lowbit.h -- the C ABI of liblowbit, and the only contract between Java and
 * native code.
 *
 * Conventions
 * - Every function that can fail returns an int status: LOWBIT_OK (0) or a
 *   lowbit_status code. On failure lowbit_last_error() returns a message for the
 *   calling thread that names the operation and the problem. Nothing else is
 *   reported through globals, and no function aborts the process on bad input.
 * - Objects are opaque handles (lowbit_context, lowbit_buffer) created and
 *   destroyed through this header. Destroying NULL is a no-op.
 * - Sizes, strides and offsets are int64_t element counts unless the name says
 *   bytes. Matrices are row-major with an explicit leading dimension ld >= cols.
 * - GEMMs compute C[M,N] = A[M,K] * B[N,K]^T ("TN"): A holds activations, one
 *   token per row; B holds weights, one output channel per row; both are
 *   K-contiguous, which is the layout CUTLASS's fastest integer kernels read.
 * - A lowbit_buffer lives where its context computes: host memory for the CPU
 *   backend, device memory for the CUDA backend. Data moves in and out only
 *   through lowbit_buffer_write / lowbit_buffer_read. An operation checks that
 *   every buffer it touches belongs to its context and is large enough for the
 *   shapes and strides it is given.
 *
 * Numeric definitions (identical on every backend)
 * - Symmetric quantization with b bits, qmax = 2^(b-1) - 1 (127 or 7):
 *     scale = amax / qmax          (amax = max |x| over the scale's slot;
 *                                   scale = 1 when the quotient is 0, i.e.
 *                                   amax == 0 or a denormal amax underflows)
 *     q     = clamp(rint(x / scale), -qmax, qmax)
 *   computed in IEEE float32 (x converted from F16/BF16 first), rint = round
 *   half to even. The grid is symmetric: -128 / -8 are never produced.
 * - Non-finite inputs (NaN, +-Inf) to a quantization are an error
 *   (LOWBIT_ERR_NONFINITE) on every backend, never a saturated value.
 *   Errors that depend on buffer contents (non-finite inputs, given scales
 *   that are not finite and > 0, flatten-plan entries out of range) are
 *   checked in this order, and the first offending element in row-major
 *   order is named. The CPU backend reports them from the call. The CUDA
 *   backend runs asynchronously and reports them from the next call on the
 *   context that waits for the device (lowbit_context_synchronize,
 *   lowbit_buffer_read), naming the operation that saw them; the failing
 *   operation's outputs are then unspecified.
 * - INT4 ("S4") is packed two values per byte along the row: element c of a
 *   row lives in byte c/2, in the LOW nibble when c is even and the HIGH nibble
 *   when c is odd (the order CUTLASS's int4b_t arrays use), two's complement.
 *   For S4 operands ld counts elements (nibbles) and must be even; row r
 *   starts at byte r*ld/2. An odd row length leaves the last high nibble 0.
 * - Dequantizing epilogue, per output element (i, j), in float32 without FMA
 *   contraction:  v = ((float)acc[i][j] * a_scale[i]) * b_scale[j] (+ bias[j])
 *   a_scale has 1 (per-tensor) or M (per-token) entries, b_scale 1 or N
 *   (per-output-channel); F16/BF16 outputs round to nearest even (values past
 *   the F16 range become +-Inf, as IEEE conversion does; the payload of a NaN
 *   output is unspecified). The host FPU is assumed in its default mode
 *   (round to nearest, no flush-to-zero).
 * - Integer accumulation is exact while K * |a|max * |b|max < 2^31 (K < 133,000
 *   for INT8 x INT8); beyond that the int32 sums wrap modulo 2^32.
 * - The library starts worker threads on first use and must not be unloaded
 *   (dlclose) while the process runs.
 */
#ifndef LOWBIT_LOWBIT_H
#define LOWBIT_LOWBIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef LOWBIT_API
#define LOWBIT_API __attribute__((visibility("default")))
#endif

/* ---- status ------------------------------------------------------------- */

enum lowbit_status {
    LOWBIT_OK = 0,
    LOWBIT_ERR_INVALID_ARGUMENT = 1, /* null/closed handle, bad shape, stride, dtype */
    LOWBIT_ERR_OUT_OF_MEMORY = 2,    /* host or device allocation failed            */
    LOWBIT_ERR_NO_DEVICE = 3,        /* CUDA asked for, but no driver or device     */
    LOWBIT_ERR_UNSUPPORTED = 4,      /* valid request this build/backend cannot do  */
    LOWBIT_ERR_NONFINITE = 5,        /* NaN or Inf in a floating-point input         */
    LOWBIT_ERR_DEVICE = 6,           /* CUDA runtime error (message has the detail) */
    LOWBIT_ERR_INTERNAL = 7          /* a bug in lowbit: please report it           */
};

/* Message for the last failing call on this thread ("" if none). The pointer
 * stays valid until the next lowbit call on the same thread. */
LOWBIT_API const char* lowbit_last_error(void);

/* "major.minor.patch" of this library. */
LOWBIT_API const char* lowbit_version(void);

/* One line describing the build: compiler, CUDA support and architectures. */
LOWBIT_API const char* lowbit_build_info(void);

/* ---- backends and contexts ---------------------------------------------- */

enum lowbit_backend {
    LOWBIT_BACKEND_CPU = 1,
    LOWBIT_BACKEND_CUDA = 2
};

/* CPU instruction-set levels for the integer kernels. */
enum lowbit_cpu_isa {
    LOWBIT_ISA_SCALAR = 0,      /* portable C++                         */
    LOWBIT_ISA_AVX2 = 1,        /* AVX2 (vpmaddwd)                      */
    LOWBIT_ISA_AVX512_VNNI = 2  /* AVX-512 BW/VL + VNNI (vpdpbusd)      */
};

/* Highest ISA level this CPU supports (detected at run time). */
LOWBIT_API int lowbit_cpu_isa_best(void);

/* Number of usable CUDA devices: 0 (and LOWBIT_OK) when the library was built
 * without CUDA, or there is no driver or no device. */
LOWBIT_API int lowbit_cuda_device_count(int* count);

typedef struct lowbit_context lowbit_context;

/* Creates a context on a backend. device selects the GPU for CUDA (ignored on
 * CPU). CUDA without a usable device gives LOWBIT_ERR_NO_DEVICE. A context may
 * be used from several threads at once; the CUDA backend orders the work of
 * one context on one stream. */
LOWBIT_API int lowbit_context_create(int backend, int device, lowbit_context** out);
LOWBIT_API void lowbit_context_destroy(lowbit_context* ctx);
LOWBIT_API int lowbit_context_backend(const lowbit_context* ctx);

/* CPU backend: the ISA level for this context's kernels (<= lowbit_cpu_isa_best)
 * and the worker-thread count (0 = all hardware threads). */
LOWBIT_API int lowbit_context_set_cpu_isa(lowbit_context* ctx, int isa);
LOWBIT_API int lowbit_context_set_threads(lowbit_context* ctx, int threads);

/* Waits until all work queued on the context is finished, and reports any
 * error the device saw meanwhile. */
LOWBIT_API int lowbit_context_synchronize(lowbit_context* ctx);

/* ---- buffers ------------------------------------------------------------ */

typedef struct lowbit_buffer lowbit_buffer;

/* Allocates bytes (> 0) of backend memory, 256-byte aligned, contents
 * undefined. */
LOWBIT_API int lowbit_buffer_alloc(lowbit_context* ctx, int64_t bytes, lowbit_buffer** out);
LOWBIT_API void lowbit_buffer_free(lowbit_buffer* buf);
LOWBIT_API int64_t lowbit_buffer_bytes(const lowbit_buffer* buf);

/* Host <-> buffer copies; read waits for queued work on the buffer's context. */
LOWBIT_API int lowbit_buffer_write(lowbit_buffer* dst, int64_t dst_offset_bytes,
                                   const void* src, int64_t bytes);
LOWBIT_API int lowbit_buffer_read(const lowbit_buffer* src, int64_t src_offset_bytes,
                                  void* dst, int64_t bytes);
/* Buffer -> buffer copy within one context (device to device on CUDA); the
 * two ranges must not overlap. */
LOWBIT_API int lowbit_buffer_copy(lowbit_buffer* dst, int64_t dst_offset_bytes,
                                  const lowbit_buffer* src, int64_t src_offset_bytes,
                                  int64_t bytes);

/* ---- data types --------------------------------------------------------- */

enum lowbit_dtype {
    LOWBIT_F32 = 0,
    LOWBIT_F16 = 1,
    LOWBIT_BF16 = 2,
    LOWBIT_S8 = 3,
    LOWBIT_S4 = 4,   /* packed, see the header comment */
    LOWBIT_S32 = 5
};

/* ---- quantization ------------------------------------------------------- */

enum lowbit_granularity {
    LOWBIT_PER_TENSOR = 0, /* 1 scale                                         */
    LOWBIT_PER_ROW = 1,    /* rows scales: per token / per output channel      */
    LOWBIT_PER_COLUMN = 2, /* cols scales: per input channel of an activation  */
    LOWBIT_PER_GROUP = 3   /* rows x (cols/group) scales, row-major; groups of
                              `group` consecutive columns; group must divide cols */
};

/* Quantizes x (rows x cols, F32/F16/BF16, leading dimension ldx) to q (S8 when
 * bits == 8, packed S4 when bits == 4, leading dimension ldq) with float32
 * scales. scales_given == 0: scales are computed from x and written to
 * `scales`; scales_given != 0: `scales` is read (static calibration) and every
 * given scale must be finite and > 0. */
LOWBIT_API int lowbit_quantize(lowbit_context* ctx,
                               const lowbit_buffer* x, int x_type, int64_t rows, int64_t cols, int64_t ldx,
                               int bits, int granularity, int64_t group, int scales_given,
                               lowbit_buffer* q, int64_t ldq, lowbit_buffer* scales);

/* Flatten-and-quantize (FlattenQuant): one pass that expands x (rows x cols)
 * by a flatten plan to rows x k_out,
 *     x'[r][j] = x[r][src_index[j]] * src_mult[j]      (float32 multiply)
 * and quantizes x' exactly as lowbit_quantize does (all granularities; group
 * and the scales refer to the k_out columns). src_index: S32 buffer of k_out
 * indices in [0, cols); src_mult: F32 buffer of k_out finite multipliers
 * (1/k for the k copies of a flattened channel, times a smoothing factor, 0
 * for padding). Copies of a channel are adjacent in FlattenQuant's plans, but
 * any order is accepted. A plan entry out of range or a non-finite multiplier
 * is LOWBIT_ERR_INVALID_ARGUMENT; a non-finite x' is LOWBIT_ERR_NONFINITE with
 * the source position. */
LOWBIT_API int lowbit_flatten_quantize(lowbit_context* ctx,
                                       const lowbit_buffer* x, int x_type, int64_t rows, int64_t cols, int64_t ldx,
                                       const lowbit_buffer* src_index, const lowbit_buffer* src_mult, int64_t k_out,
                                       int bits, int granularity, int64_t group, int scales_given,
                                       lowbit_buffer* q, int64_t ldq, lowbit_buffer* scales);

/* ---- integer GEMM ------------------------------------------------------- */

/* C (S32, M x N, ldc) = A (M x K) * B (N x K)^T, exact int32 accumulation.
 * Supported (a_type, b_type): (S8, S8), (S8, S4) (INT4 weights, INT8
 * activations) and (S4, S4). */
LOWBIT_API int lowbit_gemm_s32(lowbit_context* ctx,
                               int a_type, const lowbit_buffer* a, int64_t lda,
                               int b_type, const lowbit_buffer* b, int64_t ldb,
                               int64_t m, int64_t n, int64_t k,
                               lowbit_buffer* c, int64_t ldc);

/* The same product with the dequantizing epilogue fused: out (F32/F16/BF16,
 * M x N, ldo). a_scales: F32, a_scale_count 1 or M; b_scales: F32,
 * b_scale_count 1 or N; bias: F32 x N, or NULL. */
LOWBIT_API int lowbit_gemm_dequant(lowbit_context* ctx,
                                   int a_type, const lowbit_buffer* a, int64_t lda,
                                   int b_type, const lowbit_buffer* b, int64_t ldb,
                                   int64_t m, int64_t n, int64_t k,
                                   const lowbit_buffer* a_scales, int64_t a_scale_count,
                                   const lowbit_buffer* b_scales, int64_t b_scale_count,
                                   const lowbit_buffer* bias,
                                   int out_type, lowbit_buffer* out, int64_t ldo);

/* The epilogue alone, on an S32 accumulator (M x N, ldacc). */
LOWBIT_API int lowbit_dequantize_s32(lowbit_context* ctx,
                                     const lowbit_buffer* acc, int64_t m, int64_t n, int64_t ldacc,
                                     const lowbit_buffer* a_scales, int64_t a_scale_count,
                                     const lowbit_buffer* b_scales, int64_t b_scale_count,
                                     const lowbit_buffer* bias,
                                     int out_type, lowbit_buffer* out, int64_t ldo);

/* ---- DGQ: A8W4 with integer group scales (dual-grained quantization) ------ */

/* Checks DGQ weights once, at upload time, so that the GEMM need not:
 *   w             packed 4-bit codes, N x K, ldw (elements, even), packed as S4
 *                 (element c of a row in byte c/2, low nibble when c is even);
 *   group_scales  U8, N x (K/group) row-major: integer group scales S2;
 *   zero_points   S8, N x (K/group) row-major, or NULL.
 * NULL zero points: each nibble is a signed INT4 code q in [-8, 7] (two's
 * complement, as S4) and W8 = q * S2. Non-NULL: each nibble is an unsigned
 * code q in [0, 15] and W8 = (q - z) * S2 with z the group's zero point.
 * Every group must have S2 >= 1 and every element |W8| <= 127 (W8 = -128 is
 * rejected too: the expanded weight is a symmetric INT8 grid). The first
 * violation is LOWBIT_ERR_INVALID_ARGUMENT naming its row, group, column and
 * values. The check reads every code (one pass over the weights; on the CUDA
 * backend it copies them to the host first). group must divide K. */
LOWBIT_API int lowbit_dgq_check(lowbit_context* ctx,
                                const lowbit_buffer* w, int64_t ldw,
                                const lowbit_buffer* group_scales, const lowbit_buffer* zero_points,
                                int64_t group, int64_t n, int64_t k);

/* out (F32/F16/BF16, M x N, ldo) = epilogue( A * W8^T ): the DGQ A8W4 GEMM.
 *   a         S8, M x K, lda: activations (per-token or per-tensor INT8);
 *   w, group_scales, zero_points, group: the weights, as for lowbit_dgq_check;
 *   a_scales  F32, a_scale_count 1 or M; channel_scales F32 x N (the per-
 *             output-channel FP scale s8); bias F32 x N or NULL.
 * The weight of output channel j, input column c (group g = c / group) is
 *   W8[j][c] = q * S2[j][g]              (zero_points == NULL, q signed)
 *   W8[j][c] = (q - z[j][g]) * S2[j][g]  (otherwise, q unsigned)
 * computed in integers and used as an INT8 GEMM operand: the accumulator is
 *   acc[i][j] = sum_c a[i][c] * W8[j][c]   (int32, exact as for lowbit_gemm_s32)
 * and the output is lowbit_gemm_dequant's epilogue with b_scale = channel_scales:
 *   v = ((float)acc[i][j] * a_scale[i]) * channel_scales[j] (+ bias[j]).
 * So the real-valued weight is channel_scales[j] * W8[j][c]. No floating point
 * is used before the epilogue. The GEMM does not re-check the codes (that
 * would be a pass over the weights per call): weights must pass
 * lowbit_dgq_check; for weights that do not, W8 is the low 8 bits of the
 * integer (q - z) * S2 read as two's complement (wrap, identical on every
 * CPU ISA level), never undefined behaviour. Shapes, strides, buffer sizes and
 * "group divides K" are validated as for the other GEMMs.
 * Backends: CPU (scalar, AVX2, AVX-512 VNNI; bit-identical; the weights are
 * expanded to INT8 block by block into per-thread scratch that stays in L2).
 * The CUDA backend returns LOWBIT_ERR_UNSUPPORTED for now (the H100 kernel,
 * with the expansion inside the mainloop, is a later step). */
LOWBIT_API int lowbit_gemm_dgq(lowbit_context* ctx,
                               const lowbit_buffer* a, int64_t lda,
                               const lowbit_buffer* w, int64_t ldw,
                               const lowbit_buffer* group_scales, const lowbit_buffer* zero_points,
                               int64_t group, int64_t m, int64_t n, int64_t k,
                               const lowbit_buffer* a_scales, int64_t a_scale_count,
                               const lowbit_buffer* channel_scales,
                               const lowbit_buffer* bias,
                               int out_type, lowbit_buffer* out, int64_t ldo);

#ifdef __cplusplus
}
#endif

#endif /* LOWBIT_LOWBIT_H */
