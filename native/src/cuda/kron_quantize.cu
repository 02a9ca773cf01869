// kron_quantize.cu -- CudaBackend::kron_quantize: FlatQuant's online
// Kronecker transform fused with per-token quantization (lowbit_kron_quantize).
//
// One thread block owns a tile of T tokens at a time (grid-stride over tiles);
// P1 and P2 are loaded into shared memory once per block. Per token tile:
//   1. load:   X of every token into shared memory (row-major n1 x n2, rows
//              padded to a multiple of 4 floats with zeros; 16-byte loads
//              of 8 elements when x's rows are aligned), NaN/Inf noted;
//   2. U = P1^T X   the products are cut into 4 x 4 output tiles; a thread
//                   keeps up to kMaxTiles of them in registers and runs
//                   acc = __fmaf_rn(a, b, acc) over k = 0, 1, ... in order:
//                   the fixed-order FMA chain lowbit.h defines, so Y (and
//                   every code and scale) is bit-identical to the CPU backend;
//   3. U^T is written over X (transposed, so that the next product reads
//      4 consecutive floats per operand again);
//   4. Y = U P2     same tiles, l = 0, 1, ... in order; Y stays in registers;
//   5. per-token max / min of Y (shared-memory atomics on order-preserving
//      integer images of the floats), non-finite values noted;
//   6. scale = max(|clip_max * max|, |clip_min * min|) / qmax (one thread per
//      token writes it), codes = clamp(rint(y / scale)) into shared memory;
//   7. rows of codes stored as S8 or packed S4 (32-bit stores when aligned).
// The products run on the FP32 CUDA cores: tensor cores would round the
// operands to TF32/FP16 and sum in their own order (lowbit.h says why that is
// not the contract). Shared-memory reads: a warp owns 8 x 4 output tiles, so
// a step reads 8 consecutive float4 of A and 4 of B (one wavefront each; the
// other lanes' reads are broadcasts).
//
// Shared memory: P1 (n1 x ld1) + P2 (n2 x ld2) + T token buffers of
// max(n1 * ld2, n2 * ld1) floats, ldX = n rounded up to 4: 192 KiB at
// 128 x 128 (T = 1), 96 KiB at 64 x 64 (T = 4). A request that does not fit
// the device (a factor pair near 128 x 128 on a GPU with less than ~200 KiB
// per block) is LOWBIT_ERR_UNSUPPORTED with the numbers.
//
// Non-finite x or y: the first finding per token (x before y) is recorded in
// the context's status (device_status.cuh) with key ((row * n + col) << 2 |
// class), and reported by the next synchronize() / read().
//
// LOWBIT_KRON_TF32 (kron_quantize_tf32_kernel, below): the same steps with
// the two products on the TF32 tensor cores (wmma m16n16k8, float32
// accumulators). Factors are padded with zeros to multiples of 16 (rows 4
// floats longer still, against bank conflicts); per token X (p1 x p2) and U
// (p1 x p2) live in shared memory as floats, and Y is
// stored over X once every warp is done with it. A warp computes a 16 x 32
// strip of an output (two accumulators sharing each A fragment) over the
// whole inner dimension. Then steps 5-7 read Y from shared memory. Not the
// exact contract (lowbit.h): TF32 operands, hardware summation order.
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "kron_common.cuh"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kMaxTiles = 2;     // 4 x 4 output tiles per thread (32 accumulators)
constexpr int kMaxTokens = 64;   // tokens per block tile (per-token state in static shared memory)

// Launch geometry, computed on the host.
struct KronGeom {
    int n1, n2, n;        // factors and row length n = n1 * n2
    int ld1, ld2;         // n1, n2 rounded up to a multiple of 4
    int tiles_i, tiles_c; // ld1 / 4 and ld2 / 4: 4 x 4 tiles of an output
    int blocks_i;         // ceil(tiles_i / 8): warp blocks of 8 x 4 tiles along i
    int slots_per_token;  // 32 * blocks_i * ceil(tiles_c / 4): tile slots, some past the edge
    int tokens;           // T: tokens per block tile
    int buf;              // floats per token buffer (a multiple of 4)
    int64_t tile_count;   // ceil(rows / T)
    bool vec_x;           // every row of x starts 16-byte aligned
    bool vec_q;           // every row of q starts 4-byte aligned
};

// Step 1 of both kernels: X of every token of the tile, element e of row r0 + t at
// bufs[t * stride + (e / n2) * ld + e % n2] (units of 8 consecutive elements of x's row: one
// 16-byte load for F16/BF16, two for F32, when rows are aligned; rows past the end read as 0),
// and each token's first non-finite x noted in bad_x. Padding columns are the caller's.
template <int XT>
__device__ __forceinline__ void load_token_rows(const KronQuantizeArgs& a, int64_t r0, int ntok, int tokens, int n,
                                                int n2, bool vec_x, float* bufs, int64_t stride, int ld,
                                                unsigned long long* bad_x, int tid, int nthreads) {
    const int units = (n + kUnit - 1) / kUnit;
    for (int u = tid; u < tokens * units; u += nthreads) {
        const int t = u / units, e0 = (u - t * units) * kUnit;
        const int cnt = n - e0 < kUnit ? n - e0 : kUnit;
        float v[kUnit];
        if (t < ntok) {
            const unsigned char* row = static_cast<const unsigned char*>(a.x) + (r0 + t) * a.ldx * x_bytes(XT);
            if (vec_x && cnt == kUnit) {
                load_x8<XT>(row + static_cast<int64_t>(e0) * x_bytes(XT), v);
            } else {
#pragma unroll
                for (int e = 0; e < kUnit; ++e) v[e] = e < cnt ? load_x<XT>(row, e0 + e) : 0.0f;
            }
        } else {
#pragma unroll
            for (int e = 0; e < kUnit; ++e) v[e] = 0.0f;  // rows past the end
        }
        float* xs = bufs + t * stride;
        int k = e0 / n2, l = e0 - k * n2;
        unsigned long long bad = kNoIndex;
#pragma unroll
        for (int e = 0; e < kUnit; ++e) {
            if (e < cnt) {
                if (!is_finite(v[e]))
                    Findings::keep_min(bad, static_cast<unsigned long long>(e0 + e) << 2 | nonfinite_class(v[e]));
                xs[k * ld + l] = v[e];
                if (++l == n2) {
                    l = 0;
                    ++k;
                }
            }
        }
        if (bad != kNoIndex) atomicMin(&bad_x[t], bad);
    }
}

// Step 7 of both kernels: the codes of ntok tokens (token t's n codes, one signed char each, at
// codes + t * stride floats) stored as rows of q: byte b of a row is code b (S8) or codes 2b, 2b+1
// (S4); 32-bit stores when q's rows are 4-byte aligned (vec_q).
template <int BITS>
__device__ __forceinline__ void store_code_rows(const KronQuantizeArgs& a, int64_t r0, int ntok, int n, bool vec_q,
                                                const float* codes_base, int64_t stride, int tid, int nthreads) {
    const int row_bytes = BITS == 8 ? n : (n + 1) / 2;
    auto code_byte = [&](const signed char* codes, int b) -> unsigned {
        if constexpr (BITS == 8) {
            return static_cast<unsigned char>(codes[b]);
        } else {
            const unsigned lo4 = static_cast<unsigned>(codes[2 * b]) & 0xFu;
            const unsigned hi4 = 2 * b + 1 < n ? static_cast<unsigned>(codes[2 * b + 1]) & 0xFu : 0u;
            return lo4 | hi4 << 4;
        }
    };
    const int words = vec_q ? (row_bytes + 3) / 4 : row_bytes;  // units per row: words or bytes
    for (int u = tid; u < ntok * words; u += nthreads) {
        const int t = u / words, w = u - t * words;
        const signed char* codes = reinterpret_cast<const signed char*>(codes_base + t * stride);
        const int64_t r = r0 + t;
        unsigned char* qrow = static_cast<unsigned char*>(a.q) + (BITS == 8 ? r * a.ldq : r * (a.ldq / 2));
        if (vec_q && 4 * w + 4 <= row_bytes) {
            unsigned word = 0;
#pragma unroll
            for (int b = 0; b < 4; ++b) word |= code_byte(codes, 4 * w + b) << (8 * b);
            *reinterpret_cast<unsigned*>(qrow + 4 * w) = word;
        } else {
            const int b0 = vec_q ? 4 * w : w, b1 = vec_q ? min(4 * w + 4, row_bytes) : w + 1;
            for (int b = b0; b < b1; ++b) qrow[b] = static_cast<unsigned char>(code_byte(codes, b));
        }
    }
}

template <int XT, int BITS>
__global__ void __launch_bounds__(kThreads) kron_quantize_kernel(KronQuantizeArgs a, KronGeom g, StatusRef st) {
    extern __shared__ float4 smem4[];
    __shared__ int s_hi[kMaxTokens], s_lo[kMaxTokens];
    __shared__ unsigned long long s_bad_x[kMaxTokens], s_bad_y[kMaxTokens];
    __shared__ float s_scale[kMaxTokens];
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const int tid = threadIdx.x;
    const int n1 = g.n1, n2 = g.n2, ld1 = g.ld1, ld2 = g.ld2;

    float* p1s = reinterpret_cast<float*>(smem4);  // p1s[k * ld1 + i] = P1[k][i]; 0 for i >= n1
    float* p2s = p1s + n1 * ld1;                     // p2s[l * ld2 + j] = P2[l][j]; 0 for j >= n2
    float* bufs = p2s + n2 * ld2;                    // token t: bufs + t * g.buf
    for (int e = tid; e < n1 * ld1; e += kThreads) {
        const int k = e / ld1, i = e - k * ld1;
        p1s[e] = i < n1 ? a.p1[k * n1 + i] : 0.0f;
    }
    for (int e = tid; e < n2 * ld2; e += kThreads) {
        const int l = e / ld2, j = e - l * ld2;
        p2s[e] = j < n2 ? a.p2[l * n2 + j] : 0.0f;
    }

    // This thread's output tiles: slots tid, tid + kThreads, ... A token's
    // output is covered by warp blocks of 8 x 4 tiles (lane % 8 picks the row
    // tile, lane / 8 the column tile), so that per step a warp reads 8
    // consecutive float4 of A and 4 of B: one shared-memory wavefront each.
    // Slots past the output's edge (ragged factor sizes) stay idle.
    int my_tok[kMaxTiles], my_i0[kMaxTiles], my_c0[kMaxTiles];
    bool mine[kMaxTiles];
#pragma unroll
    for (int s = 0; s < kMaxTiles; ++s) {
        const int id = tid + s * kThreads;
        const int t = id / g.slots_per_token, slot = id - t * g.slots_per_token;
        const int wb = slot >> 5, l = slot & 31;
        const int wb_i = wb % g.blocks_i, wb_c = wb / g.blocks_i;
        const int ti = wb_i * 8 + (l & 7), tc = wb_c * 4 + (l >> 3);
        my_tok[s] = t;
        my_i0[s] = ti * 4;
        my_c0[s] = tc * 4;
        mine[s] = t < g.tokens && ti < g.tiles_i && tc < g.tiles_c;
    }

    Findings found;
    float acc[kMaxTiles][4][4];
    for (int64_t tile = blockIdx.x; tile < g.tile_count; tile += gridDim.x) {
        const int64_t r0 = tile * g.tokens;
        const int ntok = a.rows - r0 < g.tokens ? static_cast<int>(a.rows - r0) : g.tokens;
        if (tid < g.tokens) {
            s_hi[tid] = INT_MIN;
            s_lo[tid] = INT_MAX;
            s_bad_x[tid] = kNoIndex;
            s_bad_y[tid] = kNoIndex;
        }
        __syncthreads();  // also: the previous tile's codes have been stored

        // 1. X of every token: units of 8 consecutive elements of x's row (one
        //    16-byte load for F16/BF16, two for F32, when rows are aligned),
        //    scattered to X[k][l] (k = e / n2, l = e % n2); then the padding
        //    columns l >= n2 are zeroed (stage 3 and 6 reuse the buffer).
        load_token_rows<XT>(a, r0, ntok, g.tokens, g.n, n2, g.vec_x, bufs, g.buf, ld2, s_bad_x, tid, kThreads);
        if (ld2 > n2) {
            const int pad = ld2 - n2;
            for (int p = tid; p < g.tokens * n1 * pad; p += kThreads) {
                const int t = p / (n1 * pad), rem = p - t * n1 * pad, k = rem / pad;
                bufs[t * g.buf + k * ld2 + n2 + (rem - k * pad)] = 0.0f;
            }
        }
        __syncthreads();

        // 2. U = P1^T X: acc[s][r][c] = U[i0 + r][c0 + c], k ascending.
#pragma unroll
        for (int s = 0; s < kMaxTiles; ++s)
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[s][r][c] = 0.0f;
#pragma unroll 2
        for (int k = 0; k < n1; ++k) {
#pragma unroll
            for (int s = 0; s < kMaxTiles; ++s) {
                if (mine[s]) {
                    const float4 av = *reinterpret_cast<const float4*>(p1s + k * ld1 + my_i0[s]);
                    const float4 bv = *reinterpret_cast<const float4*>(bufs + my_tok[s] * g.buf + k * ld2 + my_c0[s]);
                    const float ar[4] = {av.x, av.y, av.z, av.w}, bc[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
                    for (int r = 0; r < 4; ++r)
#pragma unroll
                        for (int c = 0; c < 4; ++c) acc[s][r][c] = __fmaf_rn(ar[r], bc[c], acc[s][r][c]);
                }
            }
        }
        __syncthreads();  // every X has been read

        // 3. U^T over X: ut[l * ld1 + i] = U[i][l] for l < n2 (rows i >= n1 are padding).
#pragma unroll
        for (int s = 0; s < kMaxTiles; ++s) {
            if (mine[s]) {
                float* ut = bufs + my_tok[s] * g.buf;
#pragma unroll
                for (int c = 0; c < 4; ++c)
                    if (my_c0[s] + c < n2)
                        *reinterpret_cast<float4*>(ut + (my_c0[s] + c) * ld1 + my_i0[s]) =
                            make_float4(acc[s][0][c], acc[s][1][c], acc[s][2][c], acc[s][3][c]);
            }
        }
        __syncthreads();

        // 4. Y = U P2: acc[s][r][c] = Y[i0 + r][j0 + c], l ascending.
#pragma unroll
        for (int s = 0; s < kMaxTiles; ++s)
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[s][r][c] = 0.0f;
#pragma unroll 2
        for (int l = 0; l < n2; ++l) {
#pragma unroll
            for (int s = 0; s < kMaxTiles; ++s) {
                if (mine[s]) {
                    const float4 av = *reinterpret_cast<const float4*>(bufs + my_tok[s] * g.buf + l * ld1 + my_i0[s]);
                    const float4 bv = *reinterpret_cast<const float4*>(p2s + l * ld2 + my_c0[s]);
                    const float ar[4] = {av.x, av.y, av.z, av.w}, bc[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
                    for (int r = 0; r < 4; ++r)
#pragma unroll
                        for (int c = 0; c < 4; ++c) acc[s][r][c] = __fmaf_rn(ar[r], bc[c], acc[s][r][c]);
                }
            }
        }

        // 5. Per-token range of the valid outputs and the first non-finite one.
#pragma unroll
        for (int s = 0; s < kMaxTiles; ++s) {
            if (mine[s] && my_tok[s] < ntok) {
                int hi = INT_MIN, lo = INT_MAX;
                unsigned long long bad = kNoIndex;
#pragma unroll
                for (int r = 0; r < 4; ++r)
#pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        const int i = my_i0[s] + r, j = my_c0[s] + c;
                        if (i < n1 && j < n2) {
                            const float v = acc[s][r][c];
                            if (is_finite(v)) {
                                hi = max(hi, ordered(v));
                                lo = min(lo, ordered(v));
                            } else {
                                Findings::keep_min(bad, static_cast<unsigned long long>(i * n2 + j) << 2 |
                                                            nonfinite_class(v));
                            }
                        }
                    }
                if (hi != INT_MIN) {
                    atomicMax(&s_hi[my_tok[s]], hi);
                    atomicMin(&s_lo[my_tok[s]], lo);
                }
                if (bad != kNoIndex) atomicMin(&s_bad_y[my_tok[s]], bad);
            }
        }
        __syncthreads();  // also: every U^T has been read

        // 6. Scales (lowbit.h: amax = max(|clip_max * max y|, |clip_min * min y|)), then codes.
        if (tid < ntok)
            token_scale<qmax>(a, g.n, r0 + tid, s_hi[tid], s_lo[tid], s_bad_x[tid], s_bad_y[tid], s_scale[tid], found);
        __syncthreads();
#pragma unroll
        for (int s = 0; s < kMaxTiles; ++s) {
            if (mine[s] && my_tok[s] < ntok) {
                const float scale = s_scale[my_tok[s]];
                signed char* codes = reinterpret_cast<signed char*>(bufs + my_tok[s] * g.buf);
#pragma unroll
                for (int r = 0; r < 4; ++r)
#pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        const int i = my_i0[s] + r, j = my_c0[s] + c;
                        if (i < n1 && j < n2)
                            codes[i * n2 + j] = static_cast<signed char>(quantize_value(acc[s][r][c], scale, qmax));
                    }
            }
        }
        __syncthreads();

        // 7. Store the rows.
        store_code_rows<BITS>(a, r0, ntok, g.n, g.vec_q, bufs, g.buf, tid, kThreads);
    }
    report_findings(st, found);
}

// ---- LOWBIT_KRON_TF32: the products on tensor cores ----------------------------------------

constexpr int kTcThreads = 512;  // 16 warps (two blocks per SM: 64 registers a thread)
constexpr int kTcMaxTokens = 8;

struct KronTcGeom {
    int n1, n2, n;
    int p1, p2;           // n1, n2 rounded up to a multiple of 16
    int l1, l2;           // leading dimensions in shared memory: p1 + 4, p2 + 4 floats (rows 16 bytes
                          // apart in the banks, so the 8 rows a fragment load touches hit distinct banks)
    int tokens;           // tokens per block tile
    int64_t tile_count;   // ceil(rows / tokens)
    bool vec_x, vec_q;
    bool vec8;            // n2 % 8 == 0 and q's rows 4-byte aligned: steps 5-7 on runs of 8 outputs
};

// C(16 x 32 strip at (r0, c0)) = A(m x kd) * B(kd x n) over the whole inner dimension kd (a
// multiple of 8), with A row- or column-major (lda) and B row-major (ldb); stored row-major (ldc).
template <bool A_COL_MAJOR>
__device__ __forceinline__ void tf32_strip(const float* A, int lda, const float* B, int ldb, int kd, float* C,
                                           int ldc, int r0, int c0, bool two) {
    using namespace nvcuda;
    using ALayout = typename std::conditional<A_COL_MAJOR, wmma::col_major, wmma::row_major>::type;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc0, acc1;
    wmma::fill_fragment(acc0, 0.0f);
    wmma::fill_fragment(acc1, 0.0f);
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, ALayout> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb0, fb1;
    for (int k = 0; k < kd; k += 8) {
        const float* pa = A_COL_MAJOR ? A + int64_t(k) * lda + r0 : A + int64_t(r0) * lda + k;
        wmma::load_matrix_sync(fa, pa, lda);
        wmma::load_matrix_sync(fb0, B + int64_t(k) * ldb + c0, ldb);
#pragma unroll
        for (int e = 0; e < fa.num_elements; ++e) fa.x[e] = wmma::__float_to_tf32(fa.x[e]);
#pragma unroll
        for (int e = 0; e < fb0.num_elements; ++e) fb0.x[e] = wmma::__float_to_tf32(fb0.x[e]);
        wmma::mma_sync(acc0, fa, fb0, acc0);
        if (two) {
            wmma::load_matrix_sync(fb1, B + int64_t(k) * ldb + c0 + 16, ldb);
#pragma unroll
            for (int e = 0; e < fb1.num_elements; ++e) fb1.x[e] = wmma::__float_to_tf32(fb1.x[e]);
            wmma::mma_sync(acc1, fa, fb1, acc1);
        }
    }
    wmma::store_matrix_sync(C + int64_t(r0) * ldc + c0, acc0, ldc, wmma::mem_row_major);
    if (two) wmma::store_matrix_sync(C + int64_t(r0) * ldc + c0 + 16, acc1, ldc, wmma::mem_row_major);
}

template <int XT, int BITS>
__global__ void __launch_bounds__(kTcThreads, 2) kron_quantize_tf32_kernel(KronQuantizeArgs a, KronTcGeom g, StatusRef st) {
    extern __shared__ float4 smem4[];
    __shared__ int s_hi[kTcMaxTokens], s_lo[kTcMaxTokens];
    __shared__ unsigned long long s_bad_x[kTcMaxTokens], s_bad_y[kTcMaxTokens];
    __shared__ float s_scale[kTcMaxTokens];
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const int tid = threadIdx.x, warp = tid / 32;
    const int n1 = g.n1, n2 = g.n2, p1 = g.p1, p2 = g.p2, l1 = g.l1, l2 = g.l2;
    const int plane = p1 * l2;                       // floats of one token's X (and of its U)

    float* p1s = reinterpret_cast<float*>(smem4);    // p1s[k * l1 + i] = P1[k][i] (0 past n1)
    float* p2s = p1s + p1 * l1;                      // p2s[l * l2 + j] = P2[l][j] (0 past n2)
    float* bufs = p2s + p2 * l2;                     // token t: X (then Y) at bufs + 2 t plane, U after it
    for (int e = tid; e < p1 * l1; e += kTcThreads) {
        const int k = e / l1, i = e - k * l1;
        p1s[e] = k < n1 && i < n1 ? a.p1[k * n1 + i] : 0.0f;
    }
    for (int e = tid; e < p2 * l2; e += kTcThreads) {
        const int l = e / l2, j = e - l * l2;
        p2s[e] = l < n2 && j < n2 ? a.p2[l * n2 + j] : 0.0f;
    }

    Findings found;
    for (int64_t tile = blockIdx.x; tile < g.tile_count; tile += gridDim.x) {
        const int64_t r0 = tile * g.tokens;
        const int ntok = a.rows - r0 < g.tokens ? static_cast<int>(a.rows - r0) : g.tokens;
        if (tid < g.tokens) {
            s_hi[tid] = INT_MIN;
            s_lo[tid] = INT_MAX;
            s_bad_x[tid] = kNoIndex;
            s_bad_y[tid] = kNoIndex;
        }
        // 1. X of every token, zero-padded to p1 x p2 (rows past the end: zeros).
        load_token_rows<XT>(a, r0, ntok, g.tokens, g.n, n2, g.vec_x, bufs, int64_t(2) * plane, l2, s_bad_x, tid,
                            kTcThreads);
        if (p2 > n2 || p1 > n1) {  // the padding of X: columns n2 .. p2-1, rows n1 .. p1-1
            for (int e = tid; e < g.tokens * plane; e += kTcThreads) {
                const int t = e / plane, rem = e - t * plane, k = rem / l2, l = rem - k * l2;
                if ((k >= n1 || l >= n2) && l < p2) bufs[int64_t(2 * t) * plane + rem] = 0.0f;
            }
        }
        __syncthreads();

        // 2. U = P1^T X (A = P1^T: column-major view of p1s), 16 x 32 strips over the warps.
        const int strips_r1 = p1 / 16, strips_c = (p2 + 31) / 32;
        for (int s = warp; s < g.tokens * strips_r1 * strips_c; s += kTcThreads / 32) {
            const int t = s / (strips_r1 * strips_c), rem = s - t * strips_r1 * strips_c;
            const int rs = rem / strips_c, cs = rem - rs * strips_c;
            float* xs = bufs + int64_t(2 * t) * plane;
            tf32_strip<true>(p1s, l1, xs, l2, p1, xs + plane, l2, rs * 16, cs * 32, cs * 32 + 16 < p2);
        }
        __syncthreads();

        // 4. Y = U P2, stored over X.
        for (int s = warp; s < g.tokens * strips_r1 * strips_c; s += kTcThreads / 32) {
            const int t = s / (strips_r1 * strips_c), rem = s - t * strips_r1 * strips_c;
            const int rs = rem / strips_c, cs = rem - rs * strips_c;
            float* xs = bufs + int64_t(2 * t) * plane;
            tf32_strip<false>(xs + plane, l2, p2s, l2, p2, xs, l2, rs * 16, cs * 32, cs * 32 + 16 < p2);
        }
        __syncthreads();

        if (g.vec8) {
            // 5-7 on runs of 8 consecutive outputs (n2 % 8 == 0, q's rows 4-byte aligned): a thread
            // reads Y[i][j .. j+7] as two float4, the range goes to shared memory (reduced over the
            // warp by shuffles first when a warp's runs share a token), and the 8 codes are stored
            // straight into q as one (S4) or two (S8) 32-bit words.
            const int runs = g.n / 8;
            for (int u = tid; u < ntok * runs; u += kTcThreads) {
                const int t = u / runs, c0 = (u - t * runs) * 8, i = c0 / n2, j = c0 - i * n2;
                const float* y = bufs + int64_t(2 * t) * plane + i * l2 + j;
                const float4 v0 = *reinterpret_cast<const float4*>(y), v1 = *reinterpret_cast<const float4*>(y + 4);
                const float v[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
                int hi = INT_MIN, lo = INT_MAX;
                unsigned long long bad = kNoIndex;
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    if (is_finite(v[e])) {
                        hi = max(hi, ordered(v[e]));
                        lo = min(lo, ordered(v[e]));
                    } else {
                        Findings::keep_min(bad, static_cast<unsigned long long>(c0 + e) << 2 | nonfinite_class(v[e]));
                    }
                }
                if (runs % 32 == 0) {  // a warp's 32 runs belong to one token (and all lanes are here)
#pragma unroll
                    for (int o = 16; o > 0; o >>= 1) {
                        hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
                        lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
                    }
                    if (tid % 32 != 0) hi = INT_MIN;
                }
                if (hi != INT_MIN) {
                    atomicMax(&s_hi[t], hi);
                    atomicMin(&s_lo[t], lo);
                }
                if (bad != kNoIndex) atomicMin(&s_bad_y[t], bad);
            }
            __syncthreads();
            if (tid < ntok)
                token_scale<qmax>(a, g.n, r0 + tid, s_hi[tid], s_lo[tid], s_bad_x[tid], s_bad_y[tid], s_scale[tid], found);
            __syncthreads();
            for (int u = tid; u < ntok * runs; u += kTcThreads) {
                const int t = u / runs, c0 = (u - t * runs) * 8, i = c0 / n2, j = c0 - i * n2;
                const float* y = bufs + int64_t(2 * t) * plane + i * l2 + j;
                const float4 v0 = *reinterpret_cast<const float4*>(y), v1 = *reinterpret_cast<const float4*>(y + 4);
                const float v[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
                const float scale = s_scale[t];
                const int64_t r = r0 + t;
                unsigned w[2] = {0u, 0u};
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    const unsigned code = static_cast<unsigned>(quantize_value(v[e], scale, qmax));
                    if constexpr (BITS == 8) w[e / 4] |= (code & 0xFFu) << (8 * (e % 4));
                    else w[0] |= (code & 0xFu) << (4 * e);
                }
                if constexpr (BITS == 8) {
                    unsigned* q = reinterpret_cast<unsigned*>(static_cast<unsigned char*>(a.q) + r * a.ldq + c0);
                    q[0] = w[0];
                    q[1] = w[1];
                } else {
                    *reinterpret_cast<unsigned*>(static_cast<unsigned char*>(a.q) + r * (a.ldq / 2) + c0 / 2) = w[0];
                }
            }
        } else {
            // 5. Per-token range of the valid outputs and the first non-finite one: warp w walks rows
            //    w, w + 8, ... of every token, lanes along the row (no index divisions).
            const int lane = tid % 32;
            for (int t = 0; t < ntok; ++t) {
                const float* ys = bufs + int64_t(2 * t) * plane;
                int hi = INT_MIN, lo = INT_MAX;
                unsigned long long bad = kNoIndex;
                for (int i = warp; i < n1; i += kTcThreads / 32) {
                    for (int j = lane; j < n2; j += 32) {
                        const float v = ys[i * l2 + j];
                        if (is_finite(v)) {
                            hi = max(hi, ordered(v));
                            lo = min(lo, ordered(v));
                        } else {
                            Findings::keep_min(bad, static_cast<unsigned long long>(i * n2 + j) << 2 | nonfinite_class(v));
                        }
                    }
                }
    #pragma unroll
                for (int o = 16; o > 0; o >>= 1) {
                    hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
                    lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
                }
                if (lane == 0 && hi != INT_MIN) {
                    atomicMax(&s_hi[t], hi);
                    atomicMin(&s_lo[t], lo);
                }
                if (bad != kNoIndex) atomicMin(&s_bad_y[t], bad);
            }
            __syncthreads();

            // 6. Scales, then codes into U's buffer (U is no longer read), rows as in step 5.
            if (tid < ntok)
                token_scale<qmax>(a, g.n, r0 + tid, s_hi[tid], s_lo[tid], s_bad_x[tid], s_bad_y[tid], s_scale[tid], found);
            __syncthreads();
            for (int t = 0; t < ntok; ++t) {
                const float* ys = bufs + int64_t(2 * t) * plane;
                signed char* codes = reinterpret_cast<signed char*>(bufs + int64_t(2 * t + 1) * plane);
                const float scale = s_scale[t];
                for (int i = warp; i < n1; i += kTcThreads / 32)
                    for (int j = lane; j < n2; j += 32)
                        codes[i * n2 + j] = static_cast<signed char>(quantize_value(ys[i * l2 + j], scale, qmax));
            }
            __syncthreads();

            // 7. Store the rows (as the exact kernel's step 7).
            store_code_rows<BITS>(a, r0, ntok, g.n, g.vec_q, bufs + plane, int64_t(2) * plane, tid, kTcThreads);
        }
        __syncthreads();  // the codes are stored before the next tile writes X and U again
    }
    report_findings(st, found);
}

using KronKernel = void (*)(KronQuantizeArgs, KronGeom, StatusRef);

template <int XT, int BITS>
KronKernel kernel_for() {
    return kron_quantize_kernel<XT, BITS>;
}

KronKernel select_kernel(int x_type, int bits) {
    switch (x_type) {
        case LOWBIT_F32: return bits == 8 ? kernel_for<LOWBIT_F32, 8>() : kernel_for<LOWBIT_F32, 4>();
        case LOWBIT_F16: return bits == 8 ? kernel_for<LOWBIT_F16, 8>() : kernel_for<LOWBIT_F16, 4>();
        default: return bits == 8 ? kernel_for<LOWBIT_BF16, 8>() : kernel_for<LOWBIT_BF16, 4>();
    }
}

inline int round_up4(int v) { return (v + 3) / 4 * 4; }

using KronTcKernel = void (*)(KronQuantizeArgs, KronTcGeom, StatusRef);

KronTcKernel select_tf32_kernel(int x_type, int bits) {
    switch (x_type) {
        case LOWBIT_F32: return bits == 8 ? kron_quantize_tf32_kernel<LOWBIT_F32, 8> : kron_quantize_tf32_kernel<LOWBIT_F32, 4>;
        case LOWBIT_F16: return bits == 8 ? kron_quantize_tf32_kernel<LOWBIT_F16, 8> : kron_quantize_tf32_kernel<LOWBIT_F16, 4>;
        default: return bits == 8 ? kron_quantize_tf32_kernel<LOWBIT_BF16, 8> : kron_quantize_tf32_kernel<LOWBIT_BF16, 4>;
    }
}

}  // namespace

// LOWBIT_KRON_TF32: launches the tensor-core kernel and returns true, or returns false when the
// padded tiles of one token do not fit the device's shared memory (the exact kernel runs then).
bool CudaBackend::kron_quantize_tf32(const KronQuantizeArgs& a) {
    KronTcGeom g{};
    g.n1 = a.n1;
    g.n2 = a.n2;
    g.n = a.n1 * a.n2;
    g.p1 = (a.n1 + 15) / 16 * 16;
    g.p2 = (a.n2 + 15) / 16 * 16;
    g.l1 = g.p1 + 4;
    g.l2 = g.p2 + 4;
    const int64_t fixed_bytes = 4 * (int64_t(g.p1) * g.l1 + int64_t(g.p2) * g.l2);
    const int64_t token_bytes = 4 * 2 * int64_t(g.p1) * g.l2;
    int max_smem = 0, smem_per_sm = 0;
    LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_));
    LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device_));
    const int static_bytes = kTcMaxTokens * (4 + 4 + 8 + 8 + 4);
    const int64_t budget = int64_t(max_smem) - static_bytes;
    if (fixed_bytes + token_bytes > budget) return false;
    // Tokens per block: two blocks per SM where they fit (one block's barriers then hide behind
    // the other's work), no more than the rows spread over the SMs.
    const int64_t half = int64_t(smem_per_sm) / 2 - static_bytes - 1024;
    int tokens = static_cast<int>(std::max<int64_t>(1, (half - fixed_bytes) / token_bytes));
    tokens = std::min(tokens, kTcMaxTokens);
    while (tokens > 1 && fixed_bytes + token_bytes * tokens > budget) --tokens;
    const int64_t rows_per_sm = (a.rows + sm_count_ - 1) / sm_count_;
    tokens = static_cast<int>(std::min<int64_t>(tokens, std::max<int64_t>(1, rows_per_sm)));
    g.tokens = tokens;
    g.tile_count = (a.rows + tokens - 1) / tokens;
    const auto x = reinterpret_cast<uintptr_t>(a.x), q = reinterpret_cast<uintptr_t>(a.q);
    g.vec_x = x % 16 == 0 && (a.ldx * x_bytes(a.x_type)) % 16 == 0;
    g.vec_q = q % 4 == 0 && (a.bits == 8 ? a.ldq % 4 == 0 : a.ldq % 8 == 0);
    g.vec8 = g.vec_q && a.n2 % 8 == 0;

    const size_t smem = static_cast<size_t>(fixed_bytes + token_bytes * tokens);
    const KronTcKernel kernel = select_tf32_kernel(a.x_type, a.bits);
    if (smem + static_bytes > 48 * 1024)
        LOWBIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem)));
    const int64_t per_sm = std::max<int64_t>(1, std::min<int64_t>(8, smem_per_sm / int64_t(smem + static_bytes + 1024)));
    const unsigned blocks = grid_for(g.tile_count, int64_t(sm_count_) * per_sm);
    LaunchEnv env = launch_env(kOpKronQuantize, g.n);
    struct MarkPending {
        CudaBackend* self;
        ~MarkPending() { self->mark_status_pending(); }
    } mark{this};
    kernel<<<blocks, kTcThreads, smem, env.stream>>>(a, g, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("kron_quantize_tf32_kernel");
    return true;
}

void CudaBackend::kron_quantize(const KronQuantizeArgs& a) {
    activate();
    if (a.precision == LOWBIT_KRON_TF32 && kron_quantize_tf32(a)) return;
    if (a.precision == LOWBIT_KRON_HALF && kron_quantize_half(a)) return;  // kron_quantize_half.cu
    KronGeom g{};
    g.n1 = a.n1;
    g.n2 = a.n2;
    g.n = a.n1 * a.n2;
    g.ld1 = round_up4(a.n1);
    g.ld2 = round_up4(a.n2);
    g.tiles_i = g.ld1 / 4;
    g.tiles_c = g.ld2 / 4;
    g.blocks_i = (g.tiles_i + 7) / 8;
    g.slots_per_token = 32 * g.blocks_i * ((g.tiles_c + 3) / 4);  // <= 1024: tiles_i, tiles_c <= 32
    g.buf = round_up4(std::max(g.n1 * g.ld2, g.n2 * g.ld1));
    const int64_t fixed_bytes = 4 * (int64_t(g.n1) * g.ld1 + int64_t(g.n2) * g.ld2);

    int max_smem = 0, smem_per_sm = 0;
    LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_));
    LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device_));
    const int static_bytes = kMaxTokens * (4 + 4 + 8 + 8 + 4);
    const int64_t budget = int64_t(max_smem) - static_bytes;
    if (fixed_bytes + 4 * int64_t(g.buf) > budget)
        throw Error(LOWBIT_ERR_UNSUPPORTED,
                    "factors " + std::to_string(g.n1) + " x " + std::to_string(g.n2) + " need " +
                        std::to_string(fixed_bytes + 4 * int64_t(g.buf) + static_bytes) +
                        " bytes of shared memory per block; this GPU allows " + std::to_string(max_smem));

    // Tokens per block tile: enough 4 x 4 tiles for kMaxTiles per thread, no
    // more than the rows spread over the SMs, and what shared memory holds.
    int tokens = std::max(1, kThreads * kMaxTiles / g.slots_per_token);
    tokens = std::min(tokens, kMaxTokens);
    const int64_t rows_per_sm = (a.rows + sm_count_ - 1) / sm_count_;
    tokens = static_cast<int>(std::min<int64_t>(tokens, std::max<int64_t>(1, rows_per_sm)));
    while (tokens > 1 && fixed_bytes + 4 * int64_t(g.buf) * tokens > budget) --tokens;
    g.tokens = tokens;
    g.tile_count = (a.rows + tokens - 1) / tokens;
    const auto x = reinterpret_cast<uintptr_t>(a.x), q = reinterpret_cast<uintptr_t>(a.q);
    g.vec_x = x % 16 == 0 && (a.ldx * x_bytes(a.x_type)) % 16 == 0;
    g.vec_q = q % 4 == 0 && (a.bits == 8 ? a.ldq % 4 == 0 : a.ldq % 8 == 0);

    const size_t smem = static_cast<size_t>(fixed_bytes + 4 * int64_t(g.buf) * tokens);
    const KronKernel kernel = select_kernel(a.x_type, a.bits);
    // Without the opt-in a block gets 48 KiB of shared memory in all, static included.
    if (smem + static_bytes > 48 * 1024)
        LOWBIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem)));
    const int64_t per_sm = std::max<int64_t>(1, std::min<int64_t>(8, smem_per_sm / int64_t(smem + static_bytes + 1024)));
    const unsigned blocks = grid_for(g.tile_count, int64_t(sm_count_) * per_sm);

    LaunchEnv env = launch_env(kOpKronQuantize, g.n);
    struct MarkPending {
        CudaBackend* self;
        ~MarkPending() { self->mark_status_pending(); }
    } mark{this};
    kernel<<<blocks, kThreads, smem, env.stream>>>(a, g, env.status);
    const cudaError_t launch = cudaGetLastError();
    if (launch != cudaSuccess) {
        cudaFuncAttributes attr{};
        cudaFuncGetAttributes(&attr, kernel);
        const std::string what = "launch of kron_quantize_kernel (factors " + std::to_string(g.n1) + " x " +
                                 std::to_string(g.n2) + ", rows " + std::to_string(a.rows) + ", " +
                                 std::to_string(tokens) + " tokens per block, " + std::to_string(blocks) + " blocks of " +
                                 std::to_string(kThreads) + " threads, " + std::to_string(smem) +
                                 " bytes of dynamic shared memory; kernel: " + std::to_string(attr.numRegs) +
                                 " registers, " + std::to_string(attr.sharedSizeBytes) + " bytes static, at most " +
                                 std::to_string(attr.maxThreadsPerBlock) + " threads, " +
                                 std::to_string(attr.maxDynamicSharedSizeBytes) + " bytes dynamic)";
        check(launch, what.c_str());
    }
}

}  // namespace cuda
}  // namespace lowbit
