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
 * one context on one stream. On sm_90 the decode kernels (M <= 16 GEMMs, the
 * per-token and bit-plane quantizers) may start before the kernel in front of
 * them ends (programmatic dependent launch): each waits for it before reading
 * anything it may have written, except that a GEMM requests its first weights
 * early when none of its weight buffers was an argument of the previous call on
 * the context, so results are those of strict stream order. Environment
 * LOWBIT_PDL=off launches in plain stream order. */
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
 * for padding). FlattenQuant's plans keep the first copy of every column at
 * its own index (src_index[j] = j for j < cols) and append the extra copies
 * of the split columns after column cols - 1, then the padding; the CUDA
 * backend streams such a prefix without gathers. Any order is accepted.
 * identity_prefix: how many leading entries the caller knows to be
 * src_index[j] = j (cols for such a plan, 0 when unknown), in
 * [0, min(cols, k_out)]; a hint that picks the CUDA kernel: a wrong hint
 * costs speed, never correctness (every entry is read and validated). A
 * plan entry out of range or a non-finite multiplier is
 * LOWBIT_ERR_INVALID_ARGUMENT; a non-finite x' is LOWBIT_ERR_NONFINITE with
 * the source position. */
LOWBIT_API int lowbit_flatten_quantize(lowbit_context* ctx,
                                       const lowbit_buffer* x, int x_type, int64_t rows, int64_t cols, int64_t ldx,
                                       const lowbit_buffer* src_index, const lowbit_buffer* src_mult, int64_t k_out,
                                       int64_t identity_prefix,
                                       int bits, int granularity, int64_t group, int scales_given,
                                       lowbit_buffer* q, int64_t ldq, lowbit_buffer* scales);

/* ---- FlatQuant: Kronecker transform + per-token quantization ------------ */

/* The largest Kronecker factor lowbit_kron_quantize accepts (n1, n2 <= 128,
 * so rows up to 16384 = 128 x 128 wide; FlatQuant's rule gives (64, 64) for
 * 4096, (86, 128) for 11008, (112, 128) for 14336). */
#define LOWBIT_KRON_MAX_FACTOR 128

/* FlatQuant's online activation transform fused with per-token quantization.
 * Every row r of x (rows x n, n = n1 * n2, F32/F16/BF16, leading dimension
 * ldx; F16/BF16 converted to float32 exactly) is read as the row-major
 * n1 x n2 matrix X[k][l] = x[r][k * n2 + l] and transformed to
 *     Y = P1^T * X * P2,    y[r][i * n2 + j] = Y[i][j],
 * which is the row vector y = x * (P1 (x) P2) (Kronecker product: entry
 * (k * n2 + l, i * n2 + j) of P1 (x) P2 is P1[k][i] * P2[l][j]). p1 is F32
 * n1 x n1 and p2 F32 n2 x n2, both dense row-major (ld = n1, n2).
 *
 * Arithmetic, IEEE float32, in exactly this order on every backend:
 *     U[i][l] = fma(P1[n1-1][i], X[n1-1][l], ... fma(P1[1][i], X[1][l],
 *                   fma(P1[0][i], X[0][l], 0)) ...)          (k ascending)
 *     Y[i][j] = fma(U[i][n2-1], P2[n2-1][j], ... fma(U[i][0], P2[0][j], 0) ...)
 *                                                            (l ascending)
 * where fma(a, b, c) = a * b + c rounded once (C fmaf, CUDA __fmaf_rn, Java
 * Math.fma). Each fma is an exactly specified IEEE operation and the order is
 * fixed, so Y -- and with it every scale and code -- is bit-identical on the
 * CPU backend (every ISA level and thread count), the CUDA backend and a
 * plain sequential simulation. This is why the CUDA kernel computes the two
 * products on the FP32 CUDA cores and not on tensor cores: TF32/FP16 tensor
 * cores round the operands to 10-bit mantissas and sum in a hardware order,
 * so their Y (relative error ~1e-3) would give codes that differ from the
 * CPU's by +-1 and scales that differ in the 3rd digit. The cost is
 * n * (n1 + n2) FMAs per token (0.5 M at n = 4096).
 *
 * Then per row, with qmax = 2^(bits-1) - 1 and FlatQuant's learned clipping
 * of the activation range [min y, max y] to [clip_min * min y, clip_max * max y]:
 *     amax  = max(|clip_max * max_c y[c]|, |clip_min * min_c y[c]|)
 *     scale = amax / qmax               (1 when that is 0)
 *     q[c]  = clamp(rint(y[c] / scale), -qmax, qmax)
 * exactly as lowbit_quantize (float32 products and quotient, rint half to
 * even, symmetric grid). scales (F32 x rows) receives the per-row scales, q
 * (S8 when bits == 8, packed S4 when bits == 4, leading dimension ldq) the
 * codes, in the layout lowbit_quantize writes and the GEMMs read. clip_max
 * and clip_min must be in (0, 1] (sigmoids of the learned logits; 1 = no
 * clipping). 1 <= n1, n2 <= LOWBIT_KRON_MAX_FACTOR.
 *
 * Non-finite values are LOWBIT_ERR_NONFINITE, rows in ascending order: the
 * first row holding a NaN/Inf in x (naming its first such column of x) or,
 * when x's row is finite, a NaN/Inf in y (a non-finite entry of P1 or P2, or
 * float32 overflow in the products; naming the first such column of y).
 * Reported as lowbit_quantize reports them (CUDA: from the next call that
 * waits for the device); the outputs are then unspecified. Backends: CPU
 * (scalar and AVX-512, identical bits; threads over rows) and CUDA (one
 * fused kernel per tile of tokens: load, both products in shared memory,
 * per-row min/max, scale, round, pack; P1, P2 and one token's X live in
 * shared memory, 4 * (n1*r(n1) + n2*r(n2) + max(n1*r(n2), n2*r(n1))) bytes
 * with r() rounding up to a multiple of 4: 192 KiB at 128 x 128, which fits
 * sm_90 (H100/H200) but not sm_80; a pair that does not fit the device is
 * LOWBIT_ERR_UNSUPPORTED naming the sizes).
 *
 * precision selects the arithmetic of the two products:
 *   LOWBIT_KRON_EXACT  the fixed-order float32 FMA chains above, bit-identical
 *                      on every backend (what FlatQuant's Java simulation and
 *                      the saved models are checked against);
 *   LOWBIT_KRON_TF32   CUDA: both products on the TF32 tensor cores (operands
 *                      rounded to TF32, 10-bit mantissas; float32 sums in the
 *                      hardware's order), the rest as above. Y then carries a
 *                      relative error of about 1e-3, so a code can differ from
 *                      the exact one by 1 where y / scale lies that close to a
 *                      rounding boundary, and a scale in its 3rd or 4th digit:
 *                      the dequantized value stays within half a step plus
 *                      ~1e-3 of the row's range of the exact y. On an H100
 *                      1.4x faster than the exact kernel at n = 4096 and
 *                      11008 (M = 2048), 1.4-1.7x at M <= 16, no faster at
 *                      n = 576 and M = 2048 (bench/RESULTS.md). A factor pair
 *                      whose padded tiles do not fit the device's shared
 *                      memory (112 x 128 and 128 x 128 on an H100) runs the
 *                      exact kernel; the CPU backend always computes the exact
 *                      products.
 *   LOWBIT_KRON_HALF   CUDA: both products on the FP16 tensor cores (mma.sync
 *                      m16n8k16, float32 accumulation), for every input dtype:
 *                      P1 and P2 are scaled by exact powers of two so that
 *                      max |P| lies in [1, 2), each row's X by an exact power
 *                      of two so that its max |x| (finite entries) lies in
 *                      [64, 128) -- so no F16 operand or intermediate can
 *                      overflow, whatever x holds -- and rounded to F16 once;
 *                      the intermediate W = P1^T X is summed in float32 and
 *                      rounded to F16 once before Y = W P2 (float32 sums in the
 *                      hardware's order); Y is scaled back exactly. The rest
 *                      as above. Y carries a relative error of about 1e-3 of
 *                      the row's magnitude, as with TF32, with the same
 *                      consequences for codes and scales. A factor pair whose
 *                      tiles do not fit the device's shared memory (2 * (p1
 *                      (p1+8) + p2 (p2+8) + p1 (p2+8)) + n (x's element size +
 *                      1) bytes and change, p = n rounded up to 16: 182 KiB at
 *                      128 x 128 with F32 x) runs the exact kernel; the CPU
 *                      backend always computes the exact products. A NaN/Inf
 *                      in P1 or P2 is reported as for the other arithmetics,
 *                      but which column of y is named follows this arithmetic.
 * Any other value is LOWBIT_ERR_INVALID_ARGUMENT. */
enum lowbit_kron_precision { LOWBIT_KRON_EXACT = 0, LOWBIT_KRON_TF32 = 1, LOWBIT_KRON_HALF = 2 };
LOWBIT_API int lowbit_kron_quantize(lowbit_context* ctx,
                                    const lowbit_buffer* x, int x_type, int64_t rows, int64_t ldx,
                                    const lowbit_buffer* p1, int64_t n1, const lowbit_buffer* p2, int64_t n2,
                                    float clip_max, float clip_min, int bits,
                                    lowbit_buffer* q, int64_t ldq, lowbit_buffer* scales, int precision);

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

/* ---- tuned GEMM kernels and their dispatch (CUDA, sm_90) --------------------
 *
 * On a CUDA context, lowbit_gemm_dequant and lowbit_gemm_s32 with S8 activations
 * and S8 or S4 weights, or S4 activations and S4 weights (W4A4), and M <= 16
 * (decode) run a weight-streaming kernel (tensor-core mma.m16n8k32, sm_80+; S4
 * activations are expanded to INT8 as the kernel stages them) when the weights
 * meet its alignment rules: weights 16-byte aligned and K % 16 == 0, ldb % 16 == 0
 * (S8) or K % 32 == 0, ldb % 32 == 0, K < 131072 (S4; K < 2^21 with S4
 * activations). Otherwise, on an sm_90 device (H100/H200), S8 activations with
 * S8 or S4 weights, or S4 activations with S4 weights, and an F16 or BF16 output
 * run a CUTLASS kernel on INT8 wgmma when the shape meets its alignment rules:
 *     K % 16 == 0, N % 8 == 0, ldo % 8 == 0, lda % 16 == 0 for S8 activations
 *     and ldb % 16 == 0 for S8 weights (any even lda / ldb for S4).
 * S4 operands get there in two launches on the context's stream: an expansion
 * kernel writes them as INT8 (N x K bytes for the weights, M x K for W4A4's
 * activations; both in one launch) into workspaces the context owns (grown to
 * the largest N x K and M x K seen, freed with the context; an allocation that
 * fails is LOWBIT_ERR_OUT_OF_MEMORY), then the INT8 kernel reads the copies: INT4
 * tensor-core MMA is emulated on Hopper, so 4-bit operands are computed on INT8
 * tensor cores. The expansion adds about 1.5 x N x K (+ 1.5 x M x K for W4A4)
 * bytes of memory traffic per call, which matters at small M and little from
 * M ~ 1024 on; on sm_90 the fused kernel (LOWBIT_GEMM_SM90_W4, below) expands inside the
 * mainloop instead wherever its rules allow, and AUTO prefers it.
 * lowbit_gemm_dgq follows the same rules (see there). On a compute capability
 * 8.x device (A100, A10/3090, L4/4090), S4 activations with S4 weights run the
 * native INT4 tensor-core kernel (LOWBIT_GEMM_SM80_S4, below) when the shape
 * meets its alignment rules:
 *     K % 32 == 0, lda % 32 == 0, ldb % 32 == 0, N % 4 == 0, K < 2^25
 *     (N <= 8,388,480; operands 16-byte aligned, as every buffer is).
 * Every other request (F32 or S32 outputs of the tuned kernels, shapes off those
 * rules, other GPUs) runs the portable tiled kernel, which handles every shape:
 * misaligned shapes are slower, never an error. The streaming, tuned and INT4
 * tensor-core kernels accumulate exactly in int32 (the expansion is exact integer
 * arithmetic) and compute the epilogue in the same float32 steps without FMA
 * contraction, so their outputs are bit-identical to the CPU backend's (NaN
 * payloads aside), whichever kernel runs.
 *
 * Which configuration (tile, cluster, schedule) runs is read from a dispatch
 * table keyed by M bucket, K and N (format: native/src/gemm_table.h); S4
 * operands take the entry of the S8 GEMM of their shape (the one their expanded
 * copies run). The table compiled into the library is
 * native/tuning/sm90_w8a8.txt; the environment variable LOWBIT_GEMM_TUNING=<file>
 * replaces it for contexts created afterwards, lowbit_gemm_tuning_load for one
 * context. Shapes without an entry get a heuristic on M and the tile count per
 * SM. The tuner (lowbit.bench.GemmTune) times every configuration through
 * lowbit_gemm_dequant_config and writes such a table. */

enum lowbit_gemm_config_special {
    LOWBIT_GEMM_AUTO = -1,     /* the dispatch table's choice (what lowbit_gemm_dequant runs) */
    LOWBIT_GEMM_PORTABLE = -2, /* the portable kernels, every backend and shape: on CUDA the
                                  weight-streaming kernel where it applies (M <= 16, above),
                                  else the tiled kernel                                      */
    LOWBIT_GEMM_SM80_S4 = -3,  /* the native INT4 tensor-core kernel (S4 x S4, CUTLASS 2.x on
                                  mma.sync.m16n8k64.s4), compiled for sm_80/sm_89; on later
                                  GPUs it runs through the driver's PTX JIT (see below)     */
    LOWBIT_GEMM_SM90_W4 = -4   /* the fused 4-bit-weight kernel of sm_90 (S4 weights with S8 or
                                  S4 activations; also DGQ): codes expanded to INT8 inside
                                  the wgmma mainloop (see below)                           */
};

/* LOWBIT_GEMM_SM90_W4: S4 weights on an sm_90 device (H100/H200), without an INT8
 * copy of the weights in memory. The codes are loaded by TMA as codes and
 * expanded to INT8 in registers right before the INT8 wgmma that consumes them
 * (CUTLASS's mixed-input mainloop; the GEMM runs as out^T = W8 * A^T so that the
 * 4-bit operand is the one that goes through registers). S4 activations (W4A4)
 * are expanded to an INT8 copy first (M x K bytes, context-owned, as above).
 * Rules: F16 or BF16 output, K % 32 == 0, ldb % 32 == 0, N % 8 == 0,
 * lda % 16 == 0 for S8 activations, ldo % 8 == 0, M, N, K below 2^31.
 * lowbit_gemm_dequant (AUTO) runs it for every request on those rules that the
 * weight-streaming kernel does not take (that one owns M <= 16); requests off
 * them take the expansion path above. lowbit_gemm_dgq runs it for M <= 512 when
 * also group is a multiple of 128 or equal to K (the group scale costs the
 * mainloop a multiply per weight: above M = 512 the expansion path is faster;
 * LOWBIT_DGQ_FUSED_MAX_M=<m> in the environment moves the bound). Exact int32
 * accumulation and the same epilogue: the bits are the CPU backend's. Forcing it
 * on a request it cannot run is LOWBIT_ERR_UNSUPPORTED naming the reason. */

/* LOWBIT_GEMM_SM80_S4: S4 activations x S4 weights on INT4 tensor cores. The
 * library carries its code as sm_80 and sm_89 SASS plus compute_80 PTX, and only
 * when built with 80 in LOWBIT_CUDA_ARCHS. AUTO picks it on compute capability 8.x
 * only, for shapes on its alignment rules (above); on sm_90 and later INT4 MMA is
 * emulated, so AUTO never picks it there, but forcing it through
 * lowbit_gemm_dequant_config runs it on any CUDA device of compute capability
 * >= 8.0: on an H100 the driver JIT-compiles the compute_80 PTX at first use
 * (lowbit_gemm_config_binary reports it). The kernel writes the exact int32 sums
 * (its saturating MMA cannot saturate while K < 2^25) into an accumulator the
 * context owns (M x N x 4 bytes, in row chunks of at most 64 MiB or 128 rows;
 * freed with the context; an allocation that fails is LOWBIT_ERR_OUT_OF_MEMORY),
 * then the epilogue of lowbit_dequantize_s32 writes the output: the bits are the
 * CPU backend's. Forcing it on a request it cannot run (not S4 x S4, a CPU
 * context, a shape off the rules, a build without it) is LOWBIT_ERR_UNSUPPORTED
 * naming the reason; nothing is written. */

/* Number of tuned kernel configurations compiled into this library (0 without
 * an sm_90a CUDA build). Configurations are numbered 0 .. count-1. */
LOWBIT_API int lowbit_gemm_config_count(void);

/* Name of configuration `config`, e.g. "coop_128x256x128_c2x1" (schedule pp =
 * pingpong, coop = cooperative, sk = stream-K; tile M x N x K; cluster M x N),
 * or NULL when config is out of range. */
LOWBIT_API const char* lowbit_gemm_config_name(int config);

/* The configuration lowbit_gemm_dequant would run for these operand types,
 * shape, strides and output type: a config index, LOWBIT_GEMM_SM80_S4,
 * LOWBIT_GEMM_SM90_W4 or LOWBIT_GEMM_PORTABLE. */
LOWBIT_API int lowbit_gemm_config_select(lowbit_context* ctx, int a_type, int64_t lda, int b_type, int64_t ldb,
                                         int64_t m, int64_t n, int64_t k, int out_type, int64_t ldo,
                                         int* config);

/* lowbit_gemm_dequant with the configuration chosen by the caller (a config
 * index, LOWBIT_GEMM_AUTO, LOWBIT_GEMM_PORTABLE, LOWBIT_GEMM_SM80_S4 or
 * LOWBIT_GEMM_SM90_W4, whose rules are above); for tuning and tests. A
 * config index on a context or request it cannot run (not CUDA sm_90, not S8
 * activations with S8 or S4 weights or S4 activations with S4 weights and an
 * F16/BF16 output, shape off the alignment rules above) is
 * LOWBIT_ERR_UNSUPPORTED with the reason; with S4 operands the configuration
 * runs on their expanded INT8 copies. */
LOWBIT_API int lowbit_gemm_dequant_config(lowbit_context* ctx, int config,
                                          int a_type, const lowbit_buffer* a, int64_t lda,
                                          int b_type, const lowbit_buffer* b, int64_t ldb,
                                          int64_t m, int64_t n, int64_t k,
                                          const lowbit_buffer* a_scales, int64_t a_scale_count,
                                          const lowbit_buffer* b_scales, int64_t b_scale_count,
                                          const lowbit_buffer* bias,
                                          int out_type, lowbit_buffer* out, int64_t ldo);

/* Which code the context's device loaded for kernel configuration `config`
 * (today LOWBIT_GEMM_SM80_S4 only): *ptx_arch is the PTX architecture the kernel
 * was compiled from and *sass_arch the architecture of the machine code that
 * runs, each major * 10 + minor (cudaFuncGetAttributes' ptxVersion and
 * binaryVersion: 80 and 90 on an H100); *jit is 1 when that machine code was
 * JIT-compiled by the driver from the PTX, because the library carries no SASS
 * for this device (the INT4 kernel's SASS is sm_80 / sm_89 only, so jit == 1
 * exactly when sass_arch is not 8.x), else 0. Loads the kernel, JIT-compiling
 * it if need be (the driver caches the result). Another config, a CPU context
 * or a build without the kernel is LOWBIT_ERR_UNSUPPORTED. */
LOWBIT_API int lowbit_gemm_config_binary(lowbit_context* ctx, int config, int* ptx_arch, int* sass_arch, int* jit);

/* Replaces the context's dispatch table by `table` (the text of a tuning file).
 * A malformed table is LOWBIT_ERR_INVALID_ARGUMENT naming the line; a CPU
 * context, which has no tuned kernels, LOWBIT_ERR_UNSUPPORTED. Entries naming
 * configurations this build lacks fall back to the heuristic. */
LOWBIT_API int lowbit_gemm_tuning_load(lowbit_context* ctx, const char* table);

/* ---- dense floating-point GEMM: cuBLAS on CUDA (the benchmarks' baseline) ---- */

enum lowbit_b_layout {
    LOWBIT_B_NK = 0,  /* b is N x K: out = a * b^T (the weight layout of the quantized GEMMs) */
    LOWBIT_B_KN = 1   /* b is K x N: out = a * b                                            */
};

/* out (M x N) = a (M x K) * op(b), or out += ... when accumulate is nonzero;
 * a, b and out are dense (ld = columns) and all of type dtype: LOWBIT_F32,
 * LOWBIT_F16 or LOWBIT_BF16; b_layout is a lowbit_b_layout. Products and sums
 * in FP32, rounded once to dtype at the end (no TF32 for F32 operands).
 *   CUDA: cublasGemmEx on the context's stream (CUBLAS_COMPUTE_32F, default
 *   algorithm; the F16 "TN" call is the one torch's nn.Linear makes). cuBLAS is
 *   not linked: libcublas.so.13 is loaded at the first call (the library path,
 *   then $CUDA_HOME/lib64 and /usr/local/cuda/lib64); without it the call is
 *   LOWBIT_ERR_UNSUPPORTED saying why.
 *   CPU: the reference: every output summed in FP64 in order of k and rounded
 *   once (parallel over rows; correct, not tuned: the calibration engine's CPU
 *   GEMMs go to OpenBLAS).
 * Non-finite inputs are not checked (IEEE arithmetic: they propagate). M, N, K
 * must be below 2^31. */
LOWBIT_API int lowbit_dense_gemm(lowbit_context* ctx, int dtype, const lowbit_buffer* a, const lowbit_buffer* b,
                                 int b_layout, lowbit_buffer* out, int64_t m, int64_t n, int64_t k, int accumulate);

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
 * lowbit_dgq_check. For weights that do not, the result is unspecified but
 * never undefined behaviour: the expansion kernels use the low 8 bits of the
 * integer (q - z) * S2 read as two's complement (identical on every CPU ISA
 * level), the CPU small-M kernel (M <= 4 on AVX-512 VNNI, G a multiple of 8,
 * which multiplies the codes and scales per group without expanding them)
 * the exact product. Shapes, strides, buffer sizes and
 * "group divides K" are validated as for the other GEMMs.
 * Backends: CPU (scalar, AVX2, AVX-512 VNNI; bit-identical; the weights are
 * expanded to INT8 block by block into per-thread scratch that stays in L2,
 * except for M <= 4 on AVX-512 VNNI, see above) and CUDA, the first that
 * applies:
 *   1. M <= 16 with K % 32 == 0, ldw % 32 == 0, group % 32 == 0 and 16-byte
 *      aligned codes (sm_80+): a weight-streaming kernel that expands the codes
 *      to INT8 in registers and feeds them to INT8 tensor-core MMAs;
 *   2. M <= 512, an sm_90 device, F16 or BF16 output, K % 32 == 0, ldw % 32 == 0,
 *      N % 8 == 0, lda % 16 == 0, ldo % 8 == 0, group a multiple of 128 or
 *      equal to K: the fused kernel (LOWBIT_GEMM_SM90_W4): codes and group
 *      terms expanded to INT8 in registers inside the wgmma mainloop;
 *   3. an sm_90 device (H100/H200), F16 or BF16 output, K % 16 == 0,
 *      N % 8 == 0, lda % 16 == 0, ldo % 8 == 0 (any group, any even ldw): an
 *      expansion kernel writes the INT8 weights W8 into the context-owned
 *      workspace (as for S4 weights, "tuned GEMM kernels" above), then the
 *      tuned INT8 wgmma kernel of lowbit_gemm_dequant runs on them with
 *      channel_scales as its per-channel b scales (the configuration the S8
 *      GEMM of the same shape gets);
 *   4. otherwise (any architecture, any shape, F32 output) the codes are
 *      expanded to INT8 in registers on their way into shared memory of the
 *      portable __dp4a kernel.
 * All give the same bits. */
LOWBIT_API int lowbit_gemm_dgq(lowbit_context* ctx,
                               const lowbit_buffer* a, int64_t lda,
                               const lowbit_buffer* w, int64_t ldw,
                               const lowbit_buffer* group_scales, const lowbit_buffer* zero_points,
                               int64_t group, int64_t m, int64_t n, int64_t k,
                               const lowbit_buffer* a_scales, int64_t a_scale_count,
                               const lowbit_buffer* channel_scales,
                               const lowbit_buffer* bias,
                               int out_type, lowbit_buffer* out, int64_t ldo);

/* ---- ABQ-LLM: any-bit integer GEMMs on binary bit planes ------------------ */

/* Bit-plane operands. A p-bit integer matrix Q (rows x K, p in 1..8) is stored
 * as p binary planes of packed little-endian 64-bit words along K:
 *     word(r, i, w) = planes[(r * p + i) * ldp + w]        (uint64)
 *     bit b of word(r, i, w) = bit i of the code Q[r][64 * w + b]
 * i.e. row-major by matrix row, the p planes of a row adjacent (a (rows*p) x
 * ldp word matrix). ldp (words) is even and >= ceil(K / 64), so every row of
 * a plane starts 16-byte aligned; lowbit_bitplane_ld(K) = 2 * ceil(K / 128)
 * is the smallest. Every bit of a column >= K (the rest of the last word and
 * the words up to ldp) must be 0: the packers write them so, and the GEMM
 * reads padding words as data (a padding bit set in both operands changes
 * the product; never memory-unsafe).
 * A code is read either as
 *     unsigned:  value = sum_i 2^i b_i                        (0 .. 2^p - 1)
 *     signed:    value = -2^(p-1) b_(p-1) + sum_(i<p-1) 2^i b_i (two's complement)
 * and optionally has a per-row zero point z (S32): the operand's integer is
 * value - z. `sums` (S32, one per row) holds sum_c value(Q[r][c]) (without
 * z); the packers write it, the GEMM uses it for the zero-point terms.
 * Bit balance (ABQ-LLM's W2*: 2-bit weights on the 5-level grid {-2..2}) is
 * a signed 3-plane operand (or unsigned codes 0..4 with a zero point); W1*
 * (ternary {-1, 0, 1}) a signed 2-plane one: 5 levels need 3 planes.
 */

/* Per-token quantization of x (rows x cols, F32/F16/BF16, ldx) to bit planes:
 * planes (ldp words, as above), scales (F32 x rows), zeros (S32 x rows, or
 * NULL when symmetric) and sums (S32 x rows). Numerics in IEEE float32, rint
 * = round half to even, per row r:
 *   asymmetric != 0 (unsigned codes, bits 1..8), qmax = 2^bits - 1:
 *     lo = min(0, min_c x), hi = max(0, max_c x)   (the range holds 0)
 *     scale = (hi - lo) / qmax   (1 when that is 0; FLT_MAX when hi - lo
 *                                 overflows to +Inf)
 *     z = clamp(rint(-lo / scale), 0, qmax)
 *     q = clamp(rint(x / scale) + z, 0, qmax)       x ~ scale * (q - z)
 *   asymmetric == 0 (signed codes, bits 2..8), qmax = 2^(bits-1) - 1: as
 *     lowbit_quantize: scale = amax / qmax (1 when 0),
 *     q = clamp(rint(x / scale), -qmax, qmax)       x ~ scale * q
 * NaN/Inf inputs are LOWBIT_ERR_NONFINITE, reported as lowbit_quantize does
 * (CUDA: from the next call that waits for the device). */
LOWBIT_API int lowbit_bitplane_quantize(lowbit_context* ctx,
                                        const lowbit_buffer* x, int x_type, int64_t rows, int64_t cols, int64_t ldx,
                                        int bits, int asymmetric,
                                        lowbit_buffer* planes, int64_t ldp,
                                        lowbit_buffer* scales, lowbit_buffer* zeros, lowbit_buffer* sums);

/* out (M x N, ldo) = epilogue(acc) with the exact integer product
 *   acc[i][j] = sum_c (X[i][c] - zx[i]) * (W[j][c] - zw[j])
 *             = S[i][j] - zw[j] * xsum[i] - zx[i] * wsum[j] + K * zx[i] * zw[j]
 *   S[i][j]   = sum_(a<p) sum_(b<q) sx_a * sw_b * 2^(a+b) * popc(X_a[i] AND W_b[j])
 * where X_a[i] is plane a of row i (p = x_bits planes), W_b[j] plane b of
 * row j (q = w_bits), sx_a = -1 for the top plane of a signed operand and +1
 * otherwise; p, q in 1..8 at run time. x (M rows) holds activations, w (N
 * rows) weights, both K columns, layout as above. x_zeros / w_zeros: S32 x M /
 * x N, or NULL (z = 0); x_sums (S32 x M) is needed when w_zeros is given,
 * w_sums (S32 x N) when x_zeros is given (else they may be NULL).
 * Accumulation: each plane-pair popcount is an exact integer <= K, combined
 * and corrected in int64: exact for K <= 2^23 and |z| <= 2^16 (every packer
 * writes z in [0, 255]); |acc| <= K * 255 * 255 then (2^39 at K = 2^23).
 * Epilogue, in float32 without FMA, (float)acc rounding to nearest:
 *   v = ((float)acc * x_scale[i]) * w_scale[j]  (+ bias[j])
 * x_scales F32 x (1 or M), w_scales F32 x (1 or N), bias F32 x N or NULL,
 * out_type F32/F16/BF16 (rounded as lowbit_gemm_dequant), or S32: the low 32
 * bits of acc (two's complement; exact while |acc| < 2^31, i.e. whenever
 * K * (2^p - 1) * (2^q - 1) < 2^31: K <= 33,024 for 8 x 8 bits), scales and
 * bias then ignored (may be NULL). Backends: CPU (scalar; POPCNT; AVX-512
 * VPOPCNTDQ when the context's ISA level is AVX512_VNNI and the CPU has it;
 * all bit-identical) and CUDA (sm_80+, binary tensor cores
 * mma.m16n8k256.and.popc). */
LOWBIT_API int lowbit_bitplane_gemm(lowbit_context* ctx,
                                    const lowbit_buffer* x, int x_bits, int x_signed, int64_t ldx,
                                    const lowbit_buffer* x_zeros, const lowbit_buffer* x_sums,
                                    const lowbit_buffer* w, int w_bits, int w_signed, int64_t ldw,
                                    const lowbit_buffer* w_zeros, const lowbit_buffer* w_sums,
                                    int64_t m, int64_t n, int64_t k,
                                    const lowbit_buffer* x_scales, int64_t x_scale_count,
                                    const lowbit_buffer* w_scales, int64_t w_scale_count,
                                    const lowbit_buffer* bias,
                                    int out_type, lowbit_buffer* out, int64_t ldo);

/* The smallest plane leading dimension for K columns: 2 * ceil(K / 128)
 * words (0 when K <= 0). */
LOWBIT_API int64_t lowbit_bitplane_ld(int64_t k);

#ifdef __cplusplus
}
#endif

#endif /* LOWBIT_LOWBIT_H */
