// kron_quantize_half.cu -- LOWBIT_KRON_HALF: FlatQuant's online Kronecker transform
// Y = P1^T * X * P2 per token on the FP16 tensor cores (mma.sync m16n8k16, ldmatrix, float32
// accumulation), then the clipped per-token scale / rint / clamp / pack of lowbit_kron_quantize.
//
// CudaBackend::kron_quantize_half (end of this file) runs the token-group kernel of
// kron_half_groups.cu by default; this file's kernel (the first one, "v1") runs with
// LOWBIT_KRON_HALF_IMPL=v1 in the environment (read once per process), for A/B measurements. Both
// follow the numerics below; only the order of the float32 sums inside the tensor cores differs.
//
// Numerics (lowbit.h, LOWBIT_KRON_HALF):
//   * every operand is F16, whatever x's dtype: a BF16 x has 8 significant bits, which F16 holds
//     exactly once the token is scaled into F16's range (below), and F16's 11-bit significand
//     keeps P1, P2 and the intermediate W 8x more precise than BF16 operands would (BF16 operands
//     would put Y's relative error near 4e-3, codes off by 1 on a third of the 8-bit codes);
//   * range: each factor is scaled by an exact power of two 2^-a (2^-b) so that max |P'| lies in
//     [1, 2), and each token's X by 2^-e so that max |X'| (finite entries) lies in [2^6, 2^7);
//     then every |W'| = |sum_k P1'[k][i] X'[k][l]| < 128 * 2 * 2^7 = 2^15 fits F16 (65504) for
//     any input, massive activations (|x| ~ 1e4 .. 3e38) included, and Y' < 2^23 in float32.
//     Y = Y' * 2^(e + a + b), exact (one correctly rounded multiply, or ldexpf far out);
//   * P1', P2' and X' are rounded to F16 once (F16 x: exact), W' = P1'^T X' is accumulated in
//     float32 and rounded to F16 once before the second product, Y' = W' P2' is accumulated in
//     float32. Y's relative error is ~1e-3 of the row's magnitude, as LOWBIT_KRON_TF32's.
//
// Order of the products: W = P1^T X first, then Y = W P2. With W's rows i as the M dimension of
// both products, the m16n8k16 accumulator of a 16 x 16 piece of W (two n8 tiles) is, register for
// register, the A fragment of the second product once packed to half2 (c0 c1 | c2 c3 of tile 0,
// then of tile 1 = a0 .. a3): W never leaves the registers. (The other order, U = X P2 then
// P1^T U, needs U as a B operand, i.e. transposed, so it would go through shared memory.)
//
// Work split: a warp owns one token and one 16-row strip of i (rows 16 s .. 16 s + 15 of Y),
// so a block of T tokens has T * p1 / 16 warps (p1, p2: n1, n2 rounded up to 16; at most 8
// warps). Per 16-column chunk lc of W (l = 16 lc ..):
//     w (8 floats) = sum over k-chunks of A(P1'^T[16 s.., 16 kc..]) * B(X'[16 kc.., 16 lc..])
//     a2 = half2(w)                                  (the A fragment of the second product)
//     acc[j tiles] += a2 * B(P2'[16 lc.., all j])    (Y's strip, 16 x p2, in registers)
// so each product runs exactly once (2 * n * (p1 + p2) FLOP per token with padding) and a thread
// holds 8 * NC accumulators (NC = p2 / 16 rounded up to 4 or 8: 32 or 64 floats). Fragments
// come from shared memory with ldmatrix: P1'^T is stored transposed (row i, column k; non-trans
// ldmatrix gives the row-major A), X' and P2' row-major (ldmatrix.trans gives the "col" B).
// Rows are padded by 8 halves (16 bytes) so that the 8 rows of an 8 x 8 matrix hit distinct bank
// groups. Padding rows and columns of P1', P2', X' are zero (written once per block).
//
// Per tile of T tokens (grid-stride over tiles; P1', P2' converted once per block):
//   0. the raw rows of x were copied into a staging buffer by cp.async (16-byte chunks, issued
//      while the previous tile computed; plain loads when x's rows are not 16-byte aligned);
//   1. per token: max |x| over the finite entries and the first NaN/Inf of x (warp shuffles,
//      then shared-memory atomics), giving e;
//   2. X' = x * 2^-e rounded to F16 into the token's p1 x (p2 + 8) tile (16-byte stores when
//      n2 % 8 == 0); then the next tile's cp.async is issued;
//   3. the two products above;
//   4. Y = Y' * 2^(e+a+b); per token max / min of the valid entries and the first non-finite
//      one (shuffles over the warp, then shared-memory atomics on order-preserving integer
//      images across the token's warps);
//   5. scale per token (one thread: amax = max(|clip_max * max|, |clip_min * min|),
//      scale = amax / qmax, written to scales[row]); codes clamp(rint(y / scale)) straight from
//      the accumulators (through 1 / scale where that gives the same code, quant_math.cuh's
//      ScaleRecip rule) into a byte buffer in shared memory;
//   6. the codes stored as rows of q: 16-byte stores when q's rows allow (S4: 32 codes packed
//      into 16 bytes), else 4-byte or byte stores.
//
// Non-finite values: as the exact kernel (kron_quantize.cu), the first finding per token, x
// before y, recorded with key ((row * n + col) << 2 | class); the smallest wins. A NaN/Inf in
// P1 or P2 makes every y of a token non-finite; which column of y is named then follows this
// kernel's arithmetic.
//
// Shared memory: 2 * (p1 (p1+8) + p2 (p2+8) + T p1 (p2+8)) bytes of F16 tiles, T rows of staged
// x (n * 2 or 4 bytes each) and T rows of codes (n bytes each): 150 KiB at 128 x 128 with F16 x,
// 182 KiB with F32 x; 60 KiB at 64 x 64 (T = 2). A request that does not fit the device returns
// false and the exact kernel runs (CudaBackend::kron_quantize).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "kron_common.cuh"
#include "kron_half_groups.h"
#include "kron_half_mma.cuh"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kHalfMaxWarps = 8;
constexpr int kHalfMaxThreads = 32 * kHalfMaxWarps;
constexpr int kHalfMaxTokens = 8;  // tokens per tile (static per-token state)

struct KronHalfGeom : KronFactorTiles {  // P1'^T's rows at stride ld1 here
    int tokens;           // T
    int64_t tile_count;   // ceil(rows / T)
    int stage_ld;         // bytes per staged row of x (n * x_bytes rounded up to 16)
    int codes_ld;         // bytes per row of codes (n rounded up to 16)
    bool cp_async;        // x's rows are 16-byte aligned and n * x_bytes % 16 == 0
    bool unit8;           // n2 % 8 == 0: steps 1-2 on units of 8 consecutive elements
    int q_unit;           // 16, 4 or 1: the store width q's rows allow
};

// ---- small helpers --------------------------------------------------------------------------

// clamp(rint(y / scale)) through 1 / scale where that is provably the same code (quant_math.cuh,
// ScaleRecip: y * (1 / scale) is within 2^-15 of the quotient when |quotient| < 128), the
// correctly rounded division otherwise (near a rounding boundary, non-finite, extreme scales).
template <int QMAX>
__device__ __forceinline__ int quantize_code(float y, const ScaleRecip& s) {
    const float r = __fmul_rn(y, s.inv);
    const float d = fabsf(__fsub_rn(__fsub_rn(r, floorf(r)), 0.5f));
    if (s.fast && d > 0x1p-13f && is_finite(r)) {
        constexpr float fq = static_cast<float>(QMAX);
        return __float2int_rn(fminf(fmaxf(r, -fq), fq));
    }
    return quantize_value(y, s.s, QMAX);
}

// Step 0: the raw rows of tokens r0 .. r0+ntok-1 of x into the staging buffer (cp.async when
// g.cp_async, else plain element copies).
template <int XT>
__device__ __forceinline__ void stage_rows(const KronQuantizeArgs& a, const KronHalfGeom& g, int64_t r0, int ntok,
                                           unsigned char* stage, int tid, int nthreads) {
    constexpr int xb = x_bytes(XT);
    const int64_t row_stride = a.ldx * xb;
    const unsigned char* x = static_cast<const unsigned char*>(a.x);
    if (g.cp_async) {
        const int chunks = g.n * xb / 16;
        for (int c = tid; c < ntok * chunks; c += nthreads) {
            const int t = c / chunks, off = (c - t * chunks) * 16;
            cp_async16(stage + t * g.stage_ld + off, x + (r0 + t) * row_stride + off);
        }
        cp_async_commit();
    } else {
        for (int e = tid; e < ntok * g.n; e += nthreads) {
            const int t = e / g.n, c = e - t * g.n;
            const unsigned char* src = x + (r0 + t) * row_stride + int64_t(c) * xb;
            unsigned char* dst = stage + t * g.stage_ld + c * xb;
            if constexpr (xb == 4) *reinterpret_cast<float*>(dst) = *reinterpret_cast<const float*>(src);
            else *reinterpret_cast<unsigned short*>(dst) = *reinterpret_cast<const unsigned short*>(src);
        }
    }
}

// ---- the kernel -----------------------------------------------------------------------------

// Blocks per SM the register budget is cut for: Y's strip is 8 * NC floats a thread, so NC = 4
// fits 80 registers (3 blocks of 256 threads) on sm_90; on sm_80 that spills, so 2 there.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define LOWBIT_KRON_HALF_BLOCKS(NC) 2
#else
#define LOWBIT_KRON_HALF_BLOCKS(NC) ((NC) <= 4 ? 3 : 2)
#endif

template <int XT, int BITS, int NC>
__global__ void __launch_bounds__(kHalfMaxThreads, LOWBIT_KRON_HALF_BLOCKS(NC))
    kron_quantize_half_kernel(KronQuantizeArgs a, KronHalfGeom g, StatusRef st) {
    extern __shared__ uint4 smem_half[];
    __shared__ int s_xmax[kHalfMaxTokens];  // float bits of max |x| (non-negative: ordered as ints)
    __shared__ int s_xexp[kHalfMaxTokens];  // e: X' = X * 2^-e
    __shared__ int s_hi[kHalfMaxTokens], s_lo[kHalfMaxTokens];
    __shared__ unsigned long long s_bad_x[kHalfMaxTokens], s_bad_y[kHalfMaxTokens];
    __shared__ float s_scale[kHalfMaxTokens];
    __shared__ int s_pmax[2];

    constexpr int xb = x_bytes(XT);
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const int tid = threadIdx.x, nthreads = blockDim.x, warp = tid >> 5, lane = tid & 31;
    const int n1 = g.n1, n2 = g.n2, n = g.n, p1 = g.p1, p2 = g.p2, ld1 = g.ld1, ld2 = g.ld2, T = g.tokens;
    const int plane = p1 * ld2;  // halves of one token's X'

    __half* p1t = reinterpret_cast<__half*>(smem_half);  // p1t[i * ld1 + k] = P1'[k][i]
    __half* p2s = p1t + p1 * ld1;                         // p2s[l * ld2 + j] = P2'[l][j]
    __half* xs = p2s + p2 * ld2;                          // token t: xs + t * plane, X'[k][l] at k * ld2 + l
    unsigned char* stage = reinterpret_cast<unsigned char*>(xs + T * plane);  // token t: + t * stage_ld
    signed char* codes = reinterpret_cast<signed char*>(stage + T * g.stage_ld);  // token t: + t * codes_ld

    int64_t tile = blockIdx.x;
    if (tile < g.tile_count) {
        const int64_t r0 = tile * T;
        stage_rows<XT>(a, g, r0, static_cast<int>(a.rows - r0 < T ? a.rows - r0 : T), stage, tid, nthreads);
    }

    // P1', P2': max |P| per factor, then the scaled F16 copies (zero padding included); X' and
    // the codes' padding zeroed once (only valid entries are ever written again).
    if (tid < 2) s_pmax[tid] = 0;
    for (int e = tid; e < T * plane; e += nthreads) xs[e] = __float2half_rn(0.0f);
    for (int e = tid; e < T * g.codes_ld; e += nthreads) codes[e] = 0;
    __syncthreads();
    {
        float m1 = 0.0f, m2 = 0.0f;
        for (int e = tid; e < n1 * n1; e += nthreads) m1 = fmaxf(m1, fabsf(a.p1[e]));
        for (int e = tid; e < n2 * n2; e += nthreads) m2 = fmaxf(m2, fabsf(a.p2[e]));
        m1 = warp_max(m1);
        m2 = warp_max(m2);
        if (lane == 0) {
            atomicMax(&s_pmax[0], __float_as_int(m1));
            atomicMax(&s_pmax[1], __float_as_int(m2));
        }
    }
    __syncthreads();
    const int pa = range_exponent(__int_as_float(s_pmax[0]), 1), pb = range_exponent(__int_as_float(s_pmax[1]), 1);
    {
        const float f1 = pow2(-pa), f2 = pow2(-pb);
        for (int e = tid; e < p1 * p1; e += nthreads) {  // coalesced reads of P1[k][i], i fastest
            const int k = e / p1, i = e - k * p1;
            p1t[i * ld1 + k] = __float2half_rn(k < n1 && i < n1 ? __fmul_rn(a.p1[k * n1 + i], f1) : 0.0f);
        }
        for (int e = tid; e < p2 * p2; e += nthreads) {
            const int l = e / p2, j = e - l * p2;
            p2s[l * ld2 + j] = __float2half_rn(l < n2 && j < n2 ? __fmul_rn(a.p2[l * n2 + j], f2) : 0.0f);
        }
    }

    // This warp's part of every tile: token `tok`, rows 16 s .. 16 s + 15 of Y.
    const int tok = warp / g.strips, strip = warp - tok * g.strips;
    const int frag_row = lane & 15, frag_col = (lane >> 4) << 3;  // ldmatrix.x4 row addresses
    const unsigned a_base = smem_addr(p1t + (strip * 16 + frag_row) * ld1 + frag_col);
    const unsigned x_base = smem_addr(xs + tok * plane + frag_row * ld2 + frag_col);
    const unsigned p2_base = smem_addr(p2s + frag_row * ld2 + frag_col);
    const int i0 = strip * 16 + (lane >> 2), jq = 2 * (lane & 3);  // accumulator element positions

    Findings found;
    for (; tile < g.tile_count; tile += gridDim.x) {
        const int64_t r0 = tile * T;
        const int ntok = a.rows - r0 < T ? static_cast<int>(a.rows - r0) : T;
        if (tid < T) {
            s_xmax[tid] = 0;
            s_hi[tid] = INT_MIN;
            s_lo[tid] = INT_MAX;
            s_bad_x[tid] = kNoIndex;
            s_bad_y[tid] = kNoIndex;
        }
        cp_async_wait_all();
        __syncthreads();  // the staged rows have landed; P1', P2' are written (first tile)

        // 1. max |x| over the finite entries and the first non-finite x, per token.
        if (g.unit8) {
            const int units = n / 8;
            for (int u = tid; u < ntok * units; u += nthreads) {
                const int t = u / units, c0 = (u - t * units) * 8;
                float v[8];
                load_x8<XT>(stage + t * g.stage_ld + c0 * xb, v);
                float m = 0.0f;
                unsigned long long bad = kNoIndex;
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                    if (is_finite(v[e])) m = fmaxf(m, fabsf(v[e]));
                    else Findings::keep_min(bad, static_cast<unsigned long long>(c0 + e) << 2 | nonfinite_class(v[e]));
                }
                if (units % 32 == 0) {  // a warp's 32 units belong to one token, all lanes are here
                    m = warp_max(m);
                    if (lane != 0) m = 0.0f;
                }
                if (m > 0.0f) atomicMax(&s_xmax[t], __float_as_int(m));
                if (bad != kNoIndex) atomicMin(&s_bad_x[t], bad);
            }
        } else {
            for (int e = tid; e < ntok * n; e += nthreads) {
                const int t = e / n, c = e - t * n;
                const float v = load_x<XT>(stage + t * g.stage_ld, c);
                if (is_finite(v)) {
                    if (v != 0.0f) atomicMax(&s_xmax[t], __float_as_int(fabsf(v)));
                } else {
                    atomicMin(&s_bad_x[t], static_cast<unsigned long long>(c) << 2 | nonfinite_class(v));
                }
            }
        }
        __syncthreads();
        if (tid < ntok) s_xexp[tid] = range_exponent(__int_as_float(s_xmax[tid]), 7);
        __syncthreads();

        // 2. X' = x * 2^-e in F16, into the token's tile (padding stays zero).
        if (g.unit8) {
            const int units = n / 8;
            for (int u = tid; u < ntok * units; u += nthreads) {
                const int t = u / units, c0 = (u - t * units) * 8;
                float v[8];
                load_x8<XT>(stage + t * g.stage_ld + c0 * xb, v);
                const float f = pow2(-s_xexp[t]);
                uint4 h;
                h.x = pack_half2(__fmul_rn(v[0], f), __fmul_rn(v[1], f));
                h.y = pack_half2(__fmul_rn(v[2], f), __fmul_rn(v[3], f));
                h.z = pack_half2(__fmul_rn(v[4], f), __fmul_rn(v[5], f));
                h.w = pack_half2(__fmul_rn(v[6], f), __fmul_rn(v[7], f));
                const int k = c0 / n2, l = c0 - k * n2;  // 8 | n2: the unit lies in row k
                *reinterpret_cast<uint4*>(xs + t * plane + k * ld2 + l) = h;
            }
        } else {
            for (int e = tid; e < ntok * n; e += nthreads) {
                const int t = e / n, c = e - t * n, k = c / n2, l = c - k * n2;
                const float v = load_x<XT>(stage + t * g.stage_ld, c);
                xs[t * plane + k * ld2 + l] = __float2half_rn(__fmul_rn(v, pow2(-s_xexp[t])));
            }
        }
        __syncthreads();  // X' complete; the staging buffer is free

        // The next tile's rows travel while this one computes.
        if (tile + gridDim.x < g.tile_count) {
            const int64_t rn = (tile + gridDim.x) * T;
            stage_rows<XT>(a, g, rn, static_cast<int>(a.rows - rn < T ? a.rows - rn : T), stage, tid, nthreads);
        }

        // 3. W = P1'^T X' in 16-column chunks, each chunk at once the A fragment of Y' += W P2'.
        float acc[2 * NC][4];
#pragma unroll
        for (int t8 = 0; t8 < 2 * NC; ++t8)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[t8][r] = 0.0f;
        const bool active = tok < ntok;
        if (active) {
            for (int lc = 0; lc < g.chunks2; ++lc) {
                float w0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, w1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                for (int kc = 0; kc < g.strips; ++kc) {
                    unsigned af[4], bf[4];
                    ldsm_x4(a_base + kc * 32, af);                                  // P1'^T[16 s.., 16 kc..]
                    ldsm_x4_trans(x_base + (kc * 16 * ld2 + lc * 16) * 2, bf);     // X'[16 kc.., 16 lc..]
                    mma_f16(w0, af, bf[0], bf[1]);
                    mma_f16(w1, af, bf[2], bf[3]);
                }
                const unsigned wa[4] = {pack_half2(w0[0], w0[1]), pack_half2(w0[2], w0[3]), pack_half2(w1[0], w1[1]),
                                        pack_half2(w1[2], w1[3])};
                const unsigned p2_row = p2_base + lc * 16 * ld2 * 2;
#pragma unroll
                for (int jp = 0; jp < NC; ++jp) {
                    if (jp < g.chunks2) {
                        unsigned bf[4];
                        ldsm_x4_trans(p2_row + jp * 32, bf);                        // P2'[16 lc.., 16 jp..]
                        mma_f16(acc[2 * jp], wa, bf[0], bf[1]);
                        mma_f16(acc[2 * jp + 1], wa, bf[2], bf[3]);
                    }
                }
            }

            // 4. Y = Y' * 2^(e + a + b); the token's range and first non-finite y.
            const int shift = s_xexp[tok] + pa + pb;
            const bool mul = shift >= -126 && shift <= 127;
            const float f = mul ? pow2(shift) : 1.0f;
            int hi = INT_MIN, lo = INT_MAX;
            unsigned long long bad = kNoIndex;
#pragma unroll
            for (int t8 = 0; t8 < 2 * NC; ++t8) {
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    float& y = acc[t8][r];
                    y = mul ? __fmul_rn(y, f) : ldexpf(y, shift);
                    const int i = i0 + (r >> 1) * 8, j = t8 * 8 + jq + (r & 1);
                    if (i < n1 && j < n2) {
                        if (is_finite(y)) {
                            hi = max(hi, ordered(y));
                            lo = min(lo, ordered(y));
                        } else {
                            Findings::keep_min(bad, static_cast<unsigned long long>(i * n2 + j) << 2 | nonfinite_class(y));
                        }
                    }
                }
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                hi = max(hi, __shfl_xor_sync(0xffffffffu, hi, o));
                lo = min(lo, __shfl_xor_sync(0xffffffffu, lo, o));
            }
            if (lane == 0 && hi != INT_MIN) {
                atomicMax(&s_hi[tok], hi);
                atomicMin(&s_lo[tok], lo);
            }
            if (bad != kNoIndex) atomicMin(&s_bad_y[tok], bad);
        }
        __syncthreads();

        // 5. Scales (lowbit.h: amax = max(|clip_max * max y|, |clip_min * min y|)), then the codes.
        if (tid < ntok)
            token_scale<qmax>(a, n, r0 + tid, s_hi[tid], s_lo[tid], s_bad_x[tid], s_bad_y[tid], s_scale[tid], found);
        __syncthreads();
        if (active) {
            const ScaleRecip sr = scale_recip(s_scale[tok]);
            signed char* tc = codes + tok * g.codes_ld;
#pragma unroll
            for (int t8 = 0; t8 < 2 * NC; ++t8) {
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const int i = i0 + (r >> 1) * 8, j = t8 * 8 + jq + (r & 1);
                    if (i < n1 && j < n2) tc[i * n2 + j] = static_cast<signed char>(quantize_code<qmax>(acc[t8][r], sr));
                }
            }
        }
        __syncthreads();

        // 6. Rows of codes into q: units of g.q_unit bytes, the rest byte by byte.
        const int row_bytes = BITS == 8 ? n : (n + 1) / 2;
        const int unit = g.q_unit, full = row_bytes / unit, per_row = full + (row_bytes - full * unit);
        for (int u = tid; u < ntok * per_row; u += nthreads) {
            const int t = u / per_row, w = u - t * per_row;
            const signed char* tc = codes + t * g.codes_ld;
            unsigned char* qrow = static_cast<unsigned char*>(a.q) + (BITS == 8 ? (r0 + t) * a.ldq : (r0 + t) * (a.ldq / 2));
            if (w < full && unit == 16) {
                uint4 o;
                if constexpr (BITS == 8) {
                    o = *reinterpret_cast<const uint4*>(tc + 16 * w);
                } else {
                    const uint4 c0 = *reinterpret_cast<const uint4*>(tc + 32 * w);
                    const uint4 c1 = *reinterpret_cast<const uint4*>(tc + 32 * w + 16);
                    o.x = nibbles4(c0.x) | nibbles4(c0.y) << 16;
                    o.y = nibbles4(c0.z) | nibbles4(c0.w) << 16;
                    o.z = nibbles4(c1.x) | nibbles4(c1.y) << 16;
                    o.w = nibbles4(c1.z) | nibbles4(c1.w) << 16;
                }
                *reinterpret_cast<uint4*>(qrow + 16 * w) = o;
            } else if (w < full && unit == 4) {
                unsigned o;
                if constexpr (BITS == 8) {
                    o = *reinterpret_cast<const unsigned*>(tc + 4 * w);
                } else {
                    const uint2 c = *reinterpret_cast<const uint2*>(tc + 8 * w);
                    o = nibbles4(c.x) | nibbles4(c.y) << 16;
                }
                *reinterpret_cast<unsigned*>(qrow + 4 * w) = o;
            } else {
                const int b = w < full ? w : full * unit + (w - full);  // unit == 1, or a tail byte
                unsigned o;
                if constexpr (BITS == 8) {
                    o = static_cast<unsigned char>(tc[b]);
                } else {  // codes 2b, 2b + 1 (the code past an odd n is the zero padding)
                    o = (static_cast<unsigned>(tc[2 * b]) & 0xFu) | (static_cast<unsigned>(tc[2 * b + 1]) & 0xFu) << 4;
                }
                qrow[b] = static_cast<unsigned char>(o);
            }
        }
        // The next iteration's barrier orders these reads of the codes before they are rewritten.
    }
    cp_async_wait_all();
    report_findings(st, found);
}

using KronHalfKernel = void (*)(KronQuantizeArgs, KronHalfGeom, StatusRef);

template <int NC>
KronHalfKernel select_half_kernel_nc(int x_type, int bits) {
    switch (x_type) {
        case LOWBIT_F32:
            return bits == 8 ? kron_quantize_half_kernel<LOWBIT_F32, 8, NC> : kron_quantize_half_kernel<LOWBIT_F32, 4, NC>;
        case LOWBIT_F16:
            return bits == 8 ? kron_quantize_half_kernel<LOWBIT_F16, 8, NC> : kron_quantize_half_kernel<LOWBIT_F16, 4, NC>;
        default:
            return bits == 8 ? kron_quantize_half_kernel<LOWBIT_BF16, 8, NC> : kron_quantize_half_kernel<LOWBIT_BF16, 4, NC>;
    }
}

}  // namespace

namespace {

// LOWBIT_KRON_HALF_IMPL=v1 in the environment (read once): the first kernel (this file) instead of
// the default (kron_half_groups.cu), for A/B measurements in one process.
bool half_impl_v1() {
    static const bool v1 = [] {
        const char* s = std::getenv("LOWBIT_KRON_HALF_IMPL");
        return s != nullptr && std::strcmp(s, "v1") == 0;
    }();
    return v1;
}

}  // namespace

// LOWBIT_KRON_HALF: launches an F16 tensor-core kernel (the token-group kernel of
// kron_half_groups.cu, or this file's first kernel with LOWBIT_KRON_HALF_IMPL=v1) and returns
// true, or returns false when its tiles do not fit the device's shared memory (the exact kernel
// runs then).
bool CudaBackend::kron_quantize_half(const KronQuantizeArgs& a) {
    if (!half_impl_v1()) {
        KronHalfGroupsPlan plan;
        if (!plan_kron_half_groups(a, device_, sm_count_, plan)) return false;
        LaunchEnv env = launch_env(kOpKronQuantize, int64_t(a.n1) * a.n2);
        struct MarkPending {
            CudaBackend* self;
            ~MarkPending() { self->mark_status_pending(); }
        } mark{this};
        launch_kron_half_groups(a, plan, env);
        return true;
    }
    KronHalfGeom g{};
    static_cast<KronFactorTiles&>(g) = KronFactorTiles::of(a.n1, a.n2);
    const int xb = x_bytes(a.x_type);
    g.stage_ld = (g.n * xb + 15) / 16 * 16;
    g.codes_ld = (g.n + 1 + 15) / 16 * 16;  // one spare zero code past an odd n (S4 padding nibble)
    const auto x = reinterpret_cast<uintptr_t>(a.x), q = reinterpret_cast<uintptr_t>(a.q);
    g.cp_async = x % 16 == 0 && (a.ldx * xb) % 16 == 0 && (int64_t(g.n) * xb) % 16 == 0;
    g.unit8 = a.n2 % 8 == 0;
    const int64_t q_stride = a.bits == 8 ? a.ldq : a.ldq / 2;  // bytes between rows of q
    g.q_unit = q % 16 == 0 && q_stride % 16 == 0 ? 16 : (q % 4 == 0 && q_stride % 4 == 0 ? 4 : 1);

    const int64_t fixed_bytes = 2 * (int64_t(g.p1) * g.ld1 + int64_t(g.p2) * g.ld2);
    const int64_t token_bytes = 2 * int64_t(g.p1) * g.ld2 + g.stage_ld + g.codes_ld;
    int max_smem = 0;
    LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_));
    const int static_bytes = kHalfMaxTokens * (4 + 4 + 4 + 4 + 8 + 8 + 4) + 8;
    const int64_t budget = int64_t(max_smem) - static_bytes;
    if (fixed_bytes + token_bytes > budget) return false;

    // Tokens per tile: up to 8 warps (one per token strip), no more than the rows spread over the
    // SMs, and what shared memory holds.
    int tokens = std::max(1, kHalfMaxWarps / g.strips);
    tokens = std::min(tokens, kHalfMaxTokens);
    const int64_t rows_per_sm = (a.rows + sm_count_ - 1) / sm_count_;
    tokens = static_cast<int>(std::min<int64_t>(tokens, std::max<int64_t>(1, rows_per_sm)));
    while (tokens > 1 && fixed_bytes + token_bytes * tokens > budget) --tokens;
    g.tokens = tokens;
    g.tile_count = (a.rows + tokens - 1) / tokens;
    const int threads = 32 * tokens * g.strips;

    const size_t smem = static_cast<size_t>(fixed_bytes + token_bytes * tokens);
    const KronHalfKernel kernel =
        g.chunks2 <= 4 ? select_half_kernel_nc<4>(a.x_type, a.bits) : select_half_kernel_nc<8>(a.x_type, a.bits);
    if (smem + static_bytes > 48 * 1024)
        LOWBIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem)));
    int per_sm = 0;
    LOWBIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    const unsigned blocks = grid_for(g.tile_count, int64_t(sm_count_) * std::max(1, per_sm));
    LaunchEnv env = launch_env(kOpKronQuantize, g.n);
    struct MarkPending {
        CudaBackend* self;
        ~MarkPending() { self->mark_status_pending(); }
    } mark{this};
    kernel<<<blocks, threads, smem, env.stream>>>(a, g, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("kron_quantize_half_kernel");
    return true;
}

}  // namespace cuda
}  // namespace lowbit
