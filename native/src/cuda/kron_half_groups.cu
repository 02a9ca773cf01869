// kron_half_groups.cu -- the default LOWBIT_KRON_HALF kernel: FlatQuant's Kronecker transform
// Y = P1^T X P2 per token on the FP16 tensor cores (mma.sync m16n8k16, float32 accumulation) fused
// with the clipped per-token quantization, organised for throughput. The numerics are those of the
// first kernel (kron_quantize_half.cu, LOWBIT_KRON_HALF_IMPL=v1; lowbit.h, LOWBIT_KRON_HALF):
// P1, P2 scaled by exact powers of two to max |P'| in [1, 2), each token's X by 2^-e to max |X'| in
// [2^6, 2^7) (finite entries), all rounded to F16 once; W' = P1'^T X' summed in float32 and rounded
// to F16 once; Y' = W' P2' summed in float32; Y = Y' 2^(e + a + b) exactly. Only the order of the
// float32 sums inside the tensor cores may differ from v1 (the contract allows it); the codes come
// from the same y through the same rounding (below), and the findings follow the same rules.
//
// Why a second kernel. v1 measured 53 us at n = 4096 (64 x 64), M = 2048 on an H100, 0.13 of the
// copy bandwidth, and 28.8 us for ONE token: each block converted P1, P2 with loops of dependent
// L2 loads (~50k cycles at 128 threads), and every tile of 1-2 tokens ran 6 block-wide barriers
// around short phases, so load, products and quantization never overlapped.
//
// Structure:
//   * Token groups. A group is S = p1 / 16 warps (one per 16-row strip of W and Y) that owns one
//     token at a time; a block holds G groups (G S <= 16 warps, 12 for the kernels of 64-float Y
//     strips and S <= 6 (groups_max_threads), as shared memory allows) and is persistent (grid =
//     resident blocks, rows strided over all groups). A group synchronises with a named barrier of
//     its own warps (bar.sync 1 + group), so the groups of a block drift apart and one group's
//     quantization, another's loads and a third's products overlap; there is no block-wide barrier
//     after the prologue. Few tokens: fewer blocks, the idle groups help with the prologue only.
//   * Prologue, once per block: one pass of coalesced loads over P1 and P2 (16 values a thread
//     held in registers: one round trip up to 64 x 64), max |P| per factor and whether some entry
//     is NaN/Inf, the scaled F16 copies (row-major, zero padding). Where n1, n2 are multiples of 4
//     (p_vec) the pass runs on quads: one 16-byte load and one 8-byte store of four F16 per quad
//     (the per-entry version cost ~35 instructions an entry, a sixth of all instructions at
//     M = 2048 and most of a token's time at M = 1; beyond 64 x 64 its loads were dependent).
//     With Y's strip at 32 floats (p2 <= 64) P1'^T's A fragments of the warp's strip (S x 4
//     registers) are then loaded once with ldmatrix.trans and stay in registers for every token:
//     per token such a warp loads only X' (S x C2 ldmatrix.x4) and P2' (C2 x C2); with 64-float
//     strips they do not fit and are loaded per use, as v1 did.
//   * Per token (one staged row per group; the next row's cp.async is issued as soon as the staged
//     row has been read, so it travels during the products and the quantization):
//       B1  the staged row has landed (cp.async.wait_all + group barrier);
//       1.  max |x| over finite entries: for 16-bit x, integer maxima of the magnitudes (bits &
//           0x7fff) two at a time (__vmaxu2, one VIMNMX.U16x2 on sm_90); a magnitude at or above
//           Inf's flags the thread, which then rescans its units for the finite max and the first
//           NaN/Inf (rare); warp shuffles, one slot per warp;
//       B2  (bar.red.or: also whether some warp saw a NaN/Inf x) every thread reads the group's
//           S max |x| slots, e; x's first non-finite column only where one was seen;
//       2.  X' = x 2^-e to F16 into the group's X' tile (for F16 x and e in [-15, 14], one HMUL2 per
//           two values: the exact product rounded once, as v1's float multiply then F16 rounding);
//       B3  X' complete, the staging buffer free: the next row's cp.async;
//       3.  the products, W's 16-column chunk at a time (its accumulators packed to half2 are the A
//           fragment of Y' += W P2', as in v1);
//       4.  the warp's max / min of y over valid entries (no masks where the warp's strip has no
//           padding entry; four partial chains). y can be NaN/Inf only with a non-finite x or
//           factor or for 2^(e+a+b) > 2^104 (|Y'| < 2^23): only then (uniform per group) the NaN
//           probe (y * 0 summed) and the rare rescan for the first one run. Where 2^(e+a+b) lies
//           in [2^-78, 2^104], Y' 2^(e+a+b) is exact (nonzero |Y'| >= 2^-48), so the factor is
//           folded into the max / min and into 1 / scale instead of multiplying every Y' (step 4
//           at the loop); one slot (max, min) per warp;
//       B4  every thread reads the slots and computes the clipped scale itself (clipped_scale, the
//           same operations as token_scale: the same bits); the group's first thread writes
//           scales[row] and keeps the finding;
//       5.  codes straight from the accumulators (fast_code): y * (1 / scale) clamped to
//           [-qmax, qmax], rounded by adding 1.5 * 2^23 (half to even; t's low bits are the code);
//           a warp where some value lies within 2^-13 (8-bit) / 2^-17 (4-bit) of a rounding
//           boundary, or whose 1 / scale is not normal, redoes those pairs with the correctly
//           rounded division (a call: inlined, the compiler evaluated it for every pair). No F2I,
//           FRND or division per element; the same codes as clamp(rint(y / scale)) bit for bit
//           (the margin argument is at fast_code). The codes go to the group's buffer already in
//           q's layout (two S4 codes per byte store, or two S8 codes per 16-bit store, n2 even);
//       6.  where q's rows take 16-byte stores and the codes are packed (strip_store), each warp
//           stores its own 16 rows of codes (a contiguous range of q's row starting on 16 bytes)
//           after a __syncwarp; else B5 (codes complete) and the group stores the row with
//           16-byte (or 4-byte, or byte) stores.
//   * Non-finite values: as v1 and the exact kernel, the first finding per token, x before y, key
//     ((row * n + col) << 2 | class), the smallest kept. The codes of a token with a non-finite y
//     are unspecified (lowbit.h: the call reports an error).
//
// Budgets per token at 64 x 64 (n = 4096, S = 4 warps, 4 column chunks), per SM (H100: 128 B/clk
// of shared memory, 4 schedulers issuing one warp instruction a cycle each, mma.sync m16n8k16 F16
// at about 2 cycles per SM):
//   shared memory: X' fragments 4 strips x 16 ldmatrix.x4 + P2' 4 x 16 = 128 x 512 B = 64 KiB,
//     staged row read twice + X' written (24 KiB), codes 2 KiB + 2 KiB: ~92 KiB = ~720 cycles;
//   tensor pipe: 4 x (32 + 32) = 256 mma = ~512 cycles;
//   issue, planned: ~256 mma + 128 ldmatrix + ~20 instructions per element over 4096 / 32 lanes:
//     ~3000 warp instructions = ~750 cycles over 4 schedulers;
//   DRAM: 8 KiB read + 2 KiB written per token: 2048 tokens in 7.1 us at the measured copy rate.
//   That plan (15.5 tokens per SM at M = 2048: ~12k cycles = ~6.5 us, under the DRAM floor) is NOT
//   what runs. Measured (Nsight Compute, H100, 64 x 64, M = 2048, first version of this kernel):
//   14.9 M warp instructions (~57 per element), issued at ~0.47 per scheduler cycle with 16 warps
//   per SM (128 registers), DRAM at 0.12 of peak. With the cuts above (quad prologue, no NaN
//   probe / masks / 2^shift multiplies where they cannot matter, per-warp code stores, slot
//   reads unrolled): 11.4 M (~43 per element), 26.5 us vs 30.5 (same process; ncu source
//   counters before the quad prologue: prologue + per-warp setup ~20%, the products ~15%,
//   step 5 ~18%, steps 1-2 ~15%, the rest reductions, barriers and the next row's cp.async). Issue stays at ~0.43 a
//   cycle: each warp issues about every 9 cycles (dependency chains: ldmatrix -> mma -> pack ->
//   mma, barriers), so what would move it now is parallelism per scheduler (more warps: Y's strip
//   dominates the registers; or two tokens per group in flight), not instruction count alone.
//   Unrolling the column-chunk loop by 2 measured slower (spills at 128 registers).
//   Eighth session (Nsight, same shape): 20% of the warps' stall samples in the prologue (~1000
//   instructions a warp: the zeroing loops with their trip-count divisions, and ~300 instructions
//   of per-element predicates hoisted for the masked paths of strips with padding), 16% waiting on
//   instruction fetch (after jumps over the masked and rare paths). Pairs without padding now run
//   an ALL_FULL instantiation (kernel comment): 11.37 M -> 10.73 M warp instructions, 26.3 -> 23.9
//   us (4-bit), 27.5 -> 25.3 (8-bit), 30.4 -> 28.2 (F32 x), M = 7 10.4 -> 8.9 us. Tried and
//   measured no better: the column-chunk loop unrolled by 2 or 4 (no spills now; 23.9 / 24.1 us),
//   20 or 24 warps a block (96 / 80 registers: spills, 32-44 us).
//   86 x 128 (S = 6, 8 chunks, A fragments from shared memory: 6 x (96 + 64) = 960 ldmatrix.x4 =
//   480 KiB and 1344 mma per token): ~114 us (first version 123, v1 213); 112 x 128: ~119 us
//   (first version 166, v1 342).
// M = 1..16: the prologue and one token's chain of phases: 8.4 us at 64 x 64 including the launch
// (first version 9.8, v1 28.5, TF32 12.0); 112 x 128 19.9 us (first version 35.0).
//
// Shared memory: 2 (p1 (p1+8) + p2 (p2+8)) bytes of factors, and per group 2 p1 (p2+8) bytes of X',
// one staged row (n x 2 or 4 bytes) and the codes (n/2 or n bytes): 94 KiB at 64 x 64 (G = 4),
// 220 KiB at 128 x 128 with F16 x (G = 2), 176 KiB with F32 x (G = 1). A pair whose factors and one
// group do not fit returns false, and the exact kernel runs (as with v1).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <mutex>
#include <vector>

#include "cuda_check.h"
#include "kron_common.cuh"
#include "kron_half_groups.h"
#include "kron_half_mma.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kGroupsMaxWarps = 16;
constexpr int kGroupsMaxThreads = 32 * kGroupsMaxWarps;
constexpr int kGroupsMaxGroups = 15;  // named barriers 1 .. 15

__device__ __forceinline__ unsigned long long warp_min_u64(unsigned long long v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w < v ? w : v;
    }
    return v;
}

// The raw row `row` of x into the group's staging buffer (cp.async when g.cp_async, else plain
// element copies).
template <int XT>
__device__ __forceinline__ void stage_row(const KronQuantizeArgs& a, const KronGroupsGeom& g, int64_t row,
                                          unsigned char* stage, int tid, int nthreads) {
    constexpr int xb = x_bytes(XT);
    const unsigned char* src = static_cast<const unsigned char*>(a.x) + row * a.ldx * xb;
    if (g.cp_async) {
        const int chunks = g.n * xb / 16;
        for (int c = tid; c < chunks; c += nthreads) cp_async16(stage + 16 * c, src + 16 * c);
        cp_async_commit();
    } else {
        for (int c = tid; c < g.n; c += nthreads) {
            if constexpr (xb == 4) reinterpret_cast<float*>(stage)[c] = reinterpret_cast<const float*>(src)[c];
            else reinterpret_cast<unsigned short*>(stage)[c] = reinterpret_cast<const unsigned short*>(src)[c];
        }
    }
}

// Step 1, this thread's share: max |x| over its finite entries and its first non-finite one.
template <int XT>
__device__ __forceinline__ void token_range(const unsigned char* stage, const KronGroupsGeom& g, int tid,
                                            int nthreads, float& xmax, unsigned long long& bad) {
    xmax = 0.0f;
    bad = kNoIndex;
    if (g.unit8) {
        const int units = g.n / 8;
        const uint4* s4 = reinterpret_cast<const uint4*>(stage);
        bool rescan;
        if constexpr (XT == LOWBIT_F32) {
            unsigned m = 0;  // magnitudes of floats order as unsigned integers
#pragma unroll 4
            for (int u = tid; u < units; u += nthreads) {
                const uint4 v0 = s4[2 * u], v1 = s4[2 * u + 1];
                m = max(m, max(max(v0.x & 0x7fffffffu, v0.y & 0x7fffffffu), max(v0.z & 0x7fffffffu, v0.w & 0x7fffffffu)));
                m = max(m, max(max(v1.x & 0x7fffffffu, v1.y & 0x7fffffffu), max(v1.z & 0x7fffffffu, v1.w & 0x7fffffffu)));
            }
            rescan = m >= 0x7f800000u;
            xmax = __uint_as_float(m);
        } else {
            constexpr unsigned kInf = XT == LOWBIT_F16 ? 0x7c00u : 0x7f80u;  // magnitude of Inf
            unsigned m = 0;  // two 16-bit magnitude maxima (16-bit magnitudes order as integers)
#pragma unroll 4
            for (int u = tid; u < units; u += nthreads) {
                const uint4 v = s4[u];
                m = __vmaxu2(m, __vmaxu2(__vmaxu2(v.x & 0x7fff7fffu, v.y & 0x7fff7fffu),
                                         __vmaxu2(v.z & 0x7fff7fffu, v.w & 0x7fff7fffu)));
            }
            const unsigned top = max(m & 0xffffu, m >> 16);
            rescan = top >= kInf;
            if constexpr (XT == LOWBIT_F16) xmax = __half2float(__ushort_as_half(static_cast<unsigned short>(top)));
            else xmax = __uint_as_float(top << 16);
        }
        if (!rescan) return;
        xmax = 0.0f;  // rare: a NaN/Inf among this thread's units
        for (int u = tid; u < units; u += nthreads) {
#pragma unroll 1
            for (int e = 0; e < 8; ++e) {
                const float v = load_x<XT>(stage, 8 * u + e);
                if (is_finite(v)) xmax = fmaxf(xmax, fabsf(v));
                else Findings::keep_min(bad, static_cast<unsigned long long>(8 * u + e) << 2 | nonfinite_class(v));
            }
        }
        return;
    }
    for (int c = tid; c < g.n; c += nthreads) {
        const float v = load_x<XT>(stage, c);
        if (is_finite(v)) xmax = fmaxf(xmax, fabsf(v));
        else Findings::keep_min(bad, static_cast<unsigned long long>(c) << 2 | nonfinite_class(v));
    }
}

// Step 2: X' = x * 2^-e rounded to F16 into the group's tile (X'[k][l] at k * ld2 + l; the padding
// stays zero).
template <int XT>
__device__ __forceinline__ void scale_token(const unsigned char* stage, __half* xs, const KronGroupsGeom& g, int e,
                                            int tid, int nthreads) {
    const float f = pow2(-e);
    if (g.unit8) {
        const int units = g.n / 8, upr = g.units_per_row;
        const uint4* s4 = reinterpret_cast<const uint4*>(stage);
        // F16 x with 2^-e a normal F16: one HMUL2 per pair is the exact product rounded once.
        const bool half_mul = XT == LOWBIT_F16 && e >= -15 && e <= 14;
        const __half2 f2 = __float2half2_rn(half_mul ? f : 1.0f);
#pragma unroll 4
        for (int u = tid; u < units; u += nthreads) {
            const int k = (u * g.unit_row_magic) >> 16, l = (u - k * upr) * 8;
            uint4 h;
            if (XT == LOWBIT_F16 && half_mul) {
                uint4 v = s4[u];
                const __half2 a0 = __hmul2(*reinterpret_cast<const __half2*>(&v.x), f2);
                const __half2 a1 = __hmul2(*reinterpret_cast<const __half2*>(&v.y), f2);
                const __half2 a2 = __hmul2(*reinterpret_cast<const __half2*>(&v.z), f2);
                const __half2 a3 = __hmul2(*reinterpret_cast<const __half2*>(&v.w), f2);
                h.x = *reinterpret_cast<const unsigned*>(&a0);
                h.y = *reinterpret_cast<const unsigned*>(&a1);
                h.z = *reinterpret_cast<const unsigned*>(&a2);
                h.w = *reinterpret_cast<const unsigned*>(&a3);
            } else {
                float v[8];
                load_x8<XT>(stage + 8 * u * x_bytes(XT), v);
                h.x = pack_half2(__fmul_rn(v[0], f), __fmul_rn(v[1], f));
                h.y = pack_half2(__fmul_rn(v[2], f), __fmul_rn(v[3], f));
                h.z = pack_half2(__fmul_rn(v[4], f), __fmul_rn(v[5], f));
                h.w = pack_half2(__fmul_rn(v[6], f), __fmul_rn(v[7], f));
            }
            *reinterpret_cast<uint4*>(xs + k * g.ld2 + l) = h;
        }
        return;
    }
    for (int c = tid; c < g.n; c += nthreads) {
        const int k = c / g.n2, l = c - k * g.n2;
        xs[k * g.ld2 + l] = __float2half_rn(__fmul_rn(load_x<XT>(stage, c), f));
    }
}

// clamp(rint(y / scale), -qmax, qmax) for a y of the scale's own token (header comment, step 5):
// the code's two's complement in the low bits of the result (inv: 1 / scale, or 2^shift / scale
// for Y' = y 2^-shift, exact; step 4); dev collects |y' - rint(y')|, and the caller sends the
// values with dev >= fast_code_safe (next to a rounding boundary) to the division instead.
// The margin: y' = y * (1 / s) is within |q| 2^-22.4 of the correctly rounded quotient q (three
// roundings of 2^-24 relative), where only |q| < qmax + 1 matters (beyond it both clamp to qmax):
// under 2^-15.4 for 8-bit codes, under 2^-19.4 for 4-bit codes. A y' (clamped; clamping before
// rounding is the same as after, for the integer bound qmax) farther than 2^-13 (8-bit) or 2^-17
// (4-bit) from a boundary k + 0.5 rounds as the quotient does; the others (2^-12 or 2^-16 of the
// values) take the division.
template <int QMAX>
__device__ __forceinline__ int fast_code(float y, float inv, float& dev) {
    constexpr float kRound = 0x1.8p23f;  // 1.5 * 2^23: 22 zero low bits
    constexpr float fq = static_cast<float>(QMAX);
    const float yc = fminf(fmaxf(__fmul_rn(y, inv), -fq), fq);  // never NaN: fmaxf drops a NaN product
    const float t = __fadd_rn(yc, kRound);
    const float r = __fsub_rn(t, kRound);
    dev = fmaxf(dev, fabsf(__fsub_rn(yc, r)));  // the distance to the integer; slow where >= kSafe
    return __float_as_int(t);
}

// The margin of fast_code (exactly representable): |y' - rint(y')| at or above it takes the division.
template <int QMAX>
__device__ __forceinline__ constexpr float fast_code_safe() {
    return QMAX > 7 ? 0.5f - 0x1p-13f : 0.5f - 0x1p-17f;
}

// The division path of fast_code for a pair, as a call: inlined, the compiler computes the
// divisions of every pair speculatively and selects (it did: a third of the kernel's instructions).
__device__ __noinline__ int2 codes_by_division(float y0, float y1, float scale, int qmax) {
    return make_int2(quantize_value(y0, scale, qmax), quantize_value(y1, scale, qmax));
}

// Codes c0, c1 of Y[i][j], Y[i][j + 1] (j even) into the group's buffer: S4 two nibbles in one
// byte, S8 one 16-bit store (n2 even: i * n2 + j is even), else one byte each (n2 odd; S4 packed
// by step 6). Entries outside the n1 x n2 matrix are skipped (ALL_FULL: there are none, n2 is even).
template <int BITS, bool ALL_FULL>
__device__ __forceinline__ void put_codes(unsigned char* codes, int n1, int n2, int i, int j, int c0, int c1) {
    if (!ALL_FULL && (i >= n1 || j >= n2)) return;
    const int idx = i * n2 + j;
    if (ALL_FULL || n2 % 2 == 0) {
        if constexpr (BITS == 4) codes[idx >> 1] = static_cast<unsigned char>((c0 & 0xf) | (c1 & 0xf) << 4);
        else *reinterpret_cast<unsigned short*>(codes + idx) = static_cast<unsigned short>((c0 & 0xff) | (c1 & 0xff) << 8);
    } else {
        codes[idx] = static_cast<unsigned char>(c0);
        if (j + 1 < n2) codes[idx + 1] = static_cast<unsigned char>(c1);
    }
}

// Step 6: the token's codes (the group's buffer) into row `row` of q.
template <int BITS>
__device__ __forceinline__ void store_codes(const KronQuantizeArgs& a, const KronGroupsGeom& g, int64_t row,
                                            const unsigned char* codes, int tid, int nthreads) {
    const int n = g.n;
    const int row_bytes = BITS == 8 ? n : (n + 1) / 2;
    unsigned char* qrow = static_cast<unsigned char*>(a.q) + (BITS == 8 ? row * a.ldq : row * (a.ldq / 2));
    const int unit = g.q_unit, full = row_bytes / unit, per_row = full + (row_bytes - full * unit);
    const bool packed = BITS == 8 || g.packed_codes;
    for (int w = tid; w < per_row; w += nthreads) {
        if (w < full && unit == 16) {
            uint4 o;
            if (packed) {
                o = reinterpret_cast<const uint4*>(codes)[w];
            } else {  // S4 from one byte per code (n2 odd)
                const uint4 c0 = reinterpret_cast<const uint4*>(codes)[2 * w];
                const uint4 c1 = reinterpret_cast<const uint4*>(codes)[2 * w + 1];
                o.x = nibbles4(c0.x) | nibbles4(c0.y) << 16;
                o.y = nibbles4(c0.z) | nibbles4(c0.w) << 16;
                o.z = nibbles4(c1.x) | nibbles4(c1.y) << 16;
                o.w = nibbles4(c1.z) | nibbles4(c1.w) << 16;
            }
            reinterpret_cast<uint4*>(qrow)[w] = o;
        } else if (w < full && unit == 4) {
            unsigned o;
            if (packed) {
                o = reinterpret_cast<const unsigned*>(codes)[w];
            } else {
                const uint2 c = reinterpret_cast<const uint2*>(codes)[w];
                o = nibbles4(c.x) | nibbles4(c.y) << 16;
            }
            reinterpret_cast<unsigned*>(qrow)[w] = o;
        } else {
            const int b = w < full ? w : full * unit + (w - full);  // unit == 1, or a tail byte
            unsigned o;
            if (packed) {
                o = codes[b];
            } else {  // codes 2b, 2b + 1 (the code past an odd n is the zero padding)
                o = (static_cast<unsigned>(codes[2 * b]) & 0xfu) | (static_cast<unsigned>(codes[2 * b + 1]) & 0xfu) << 4;
            }
            qrow[b] = static_cast<unsigned char>(o);
        }
    }
}

// Step 4 without NaN/Inf (the caller knows there is none): the warp's max and min of Y' over
// the valid entries of its strip (FULL: every entry is valid, no masks).
// Four partial maxima / minima (one per r), combined at the end: four short dependency chains
// instead of one long one.
template <int NC, bool FULL>
__device__ __forceinline__ void strip_range(const float (&acc)[2 * NC][4], int i0, int jq, int n1, int n2, float& hi,
                                            float& lo) {
    float h[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, l[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
    const bool row_ok[2] = {i0 < n1, i0 + 8 < n1};
#pragma unroll
    for (int t8 = 0; t8 < 2 * NC; ++t8) {
        const int j = t8 * 8 + jq;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const float y = acc[t8][r];
            if (FULL) {
                h[r] = fmaxf(h[r], y);
                l[r] = fminf(l[r], y);
            } else {
                const bool valid = row_ok[r >> 1] && j + (r & 1) < n2;
                h[r] = fmaxf(h[r], valid ? y : -INFINITY);
                l[r] = fminf(l[r], valid ? y : INFINITY);
            }
        }
    }
    hi = fmaxf(fmaxf(h[0], h[1]), fmaxf(h[2], h[3]));
    lo = fminf(fminf(l[0], l[1]), fminf(l[2], l[3]));
}

// Step 5, fast path: the codes of the warp's strip (fast_code of acc * inv) into the group's
// buffer; returns the largest distance of a y' to its integer (>= fast_code_safe: the division
// decides). FULL (every entry valid, n2 = 16 NC, so even): stores at fixed offsets, no checks.
template <int BITS, int QMAX, int NC, bool FULL>
__device__ __forceinline__ float strip_codes(const float (&acc)[2 * NC][4], float inv, unsigned char* codes, int i0,
                                             int jq, int n1, int n2) {
    float dev[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};  // partial maxima (short dependency chains)
    unsigned char* base = codes + (BITS == 4 ? (i0 * n2 + jq) >> 1 : i0 * n2 + jq);
    const int half_strip = BITS == 4 ? 4 * n2 : 8 * n2;  // bytes between rows i0 and i0 + 8
#pragma unroll
    for (int t8 = 0; t8 < 2 * NC; ++t8) {
#pragma unroll
        for (int rh = 0; rh < 2; ++rh) {
            const int c0 = fast_code<QMAX>(acc[t8][2 * rh], inv, dev[rh][0]);
            const int c1 = fast_code<QMAX>(acc[t8][2 * rh + 1], inv, dev[rh][1]);
            if (FULL) {
                unsigned char* p = base + rh * half_strip + t8 * (BITS == 4 ? 4 : 8);
                if constexpr (BITS == 4)
                    *p = static_cast<unsigned char>((c0 & 0xf) | (c1 & 0xf) << 4);
                else
                    *reinterpret_cast<unsigned short*>(p) = static_cast<unsigned short>((c0 & 0xff) | (c1 & 0xff) << 8);
            } else {
                put_codes<BITS, false>(codes, n1, n2, i0 + rh * 8, t8 * 8 + jq, c0, c1);
            }
        }
    }
    return fmaxf(fmaxf(dev[0][0], dev[0][1]), fmaxf(dev[1][0], dev[1][1]));
}

// Step 6 for one warp (g.strip_store: packed codes, q's rows take 16-byte stores): the codes of
// the warp's 16 rows of Y, bytes [b0, b1) of the token's row of q (b0 a multiple of 16).
template <int BITS>
__device__ __forceinline__ void store_strip_codes(const KronQuantizeArgs& a, const KronGroupsGeom& g, int64_t row,
                                                  const unsigned char* codes, int strip, int lane) {
    const int row_i = BITS == 8 ? g.n2 : g.n2 / 2;  // bytes per row of Y (n2 even for S4)
    const int b0 = 16 * strip * row_i, b1 = min(16 * strip + 16, g.n1) * row_i;
    unsigned char* qrow = static_cast<unsigned char*>(a.q) + (BITS == 8 ? row * a.ldq : row * (a.ldq / 2));
    const int u1 = (b1 - b0) / 16 + b0 / 16;
    for (int u = b0 / 16 + lane; u < u1; u += 32)
        reinterpret_cast<uint4*>(qrow)[u] = reinterpret_cast<const uint4*>(codes)[u];
    for (int b = 16 * u1 + lane; b < b1; b += 32) qrow[b] = codes[b];
}

// ---- the kernel -----------------------------------------------------------------------------

// NC: p2 / 16 rounded up to 4 or 8 (Y's strip is 8 NC floats a thread); SMAX: p1 / 16 rounded up
// to 4, 6 or 8 (the k chunks of the first product; with NC == 4 P1'^T's A fragments are held in
// registers, 4 SMAX).
// Threads a block may have: 16 warps (128 registers a thread), except where Y's strip is 64 floats
// a thread (NC == 8) and a group at most 6 warps (SMAX <= 6): 12 warps there (up to 168 registers;
// at 128 those kernels spilled, and 86 x 128 keeps its two groups). With 7-8 warps a group (112 x
// 128, 128 x 128) two groups need the 16 warps, which measured faster than one group unspilled.
__host__ __device__ constexpr int groups_max_threads(int nc, int smax) {
    return nc == 8 && smax <= 6 ? 384 : kGroupsMaxThreads;
}

// ALL_FULL (n1 % 16 == 0, n2 == 16 NC; instantiated for SMAX == 4: 64 x 64, 48 x 64, 64 x 128):
// no warp's strip has a padding entry, so the masked paths are compiled out (at 64 x 64 their
// hoisted predicates were ~300 instructions a warp, and the jumps over their code a third of the
// instruction-fetch stalls), and nothing is zeroed: every entry of P1', P2', X' that ldmatrix
// reads, and every code byte, is written before it is read.
template <int XT, int BITS, int NC, int SMAX, bool ALL_FULL>
__global__ void __launch_bounds__(groups_max_threads(NC, SMAX), 1)
    kron_half_groups_kernel(KronQuantizeArgs a, KronGroupsGeom g, StatusRef st) {
    extern __shared__ uint4 smem_groups[];
    __shared__ float s_xmax[kGroupsMaxWarps];
    __shared__ unsigned long long s_badx[kGroupsMaxWarps], s_bady[kGroupsMaxWarps];
    __shared__ float2 s_hilo[kGroupsMaxWarps];  // the warps' max and min y
    __shared__ float s_pmax[2][kGroupsMaxWarps];

    constexpr int qmax = BITS == 8 ? 127 : 7;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int S = g.strips, grp = warp / S, strip = warp - grp * S;
    const int gthreads = 32 * S, gtid = tid - grp * gthreads, wfirst = grp * S, bar = 1 + grp;
    const int n1 = g.n1, n2 = g.n2, n = g.n, ld1 = g.ld1, ld2 = g.ld2;

    __half* p1s = reinterpret_cast<__half*>(smem_groups);  // p1s[k * ld1 + i] = P1'[k][i]
    __half* p2s = p1s + g.p1 * ld1;                         // p2s[l * ld2 + j] = P2'[l][j]
    unsigned char* gbase = reinterpret_cast<unsigned char*>(smem_groups) + g.fixed_bytes + grp * g.group_bytes;
    __half* xs = reinterpret_cast<__half*>(gbase);  // X'[k][l] at k * ld2 + l
    unsigned char* stage = gbase + 2 * g.p1 * ld2;
    unsigned char* codes = stage + g.stage_ld;

    const int64_t row_step = int64_t(gridDim.x) * g.groups;
    int64_t row = int64_t(blockIdx.x) * g.groups + grp;
    if (row < a.rows) stage_row<XT>(a, g, row, stage, gtid, gthreads);

    // X' and code padding zeroed once (only valid entries are written again).
    if (!ALL_FULL) {
        for (int e = gtid; e < g.p1 * ld2 / 8; e += gthreads) reinterpret_cast<uint4*>(xs)[e] = make_uint4(0, 0, 0, 0);
        for (int e = gtid; e < g.codes_ld / 16; e += gthreads) reinterpret_cast<uint4*>(codes)[e] = make_uint4(0, 0, 0, 0);
    }

    // P1', P2': one pass of coalesced loads over both factors (index e < n1^2: P1, else P2), the
    // first kHeldP per thread kept in registers (all of them up to 8192 entries: every pair to
    // 64 x 64) so that only one round trip of loads precedes the block's first barrier; max |P| per
    // factor; then the scaled F16 copies over a zeroed area (the padding stays zero).
    const int nthreads = blockDim.x, nwarps = nthreads >> 5;
    const int c1 = n1 * n1, ctot = c1 + n2 * n2;
    constexpr int kHeldP = 16;
    // g.p_vec (n1, n2 multiples of 4, 16-byte aligned factors): quads of 4 consecutive entries
    // (a quad never straddles a row or the two factors), one 16-byte load and one 8-byte store each.
    const int q1 = c1 / 4, qtot = ctot / 4;
    float held[kHeldP];
    bool p_bad = false;  // a NaN/Inf in P1 or P2 (then every y may be one)
    {
        if (!ALL_FULL)
            for (int e = tid; e < (g.p1 * ld1 + g.p2 * ld2) / 8; e += nthreads)
                reinterpret_cast<uint4*>(p1s)[e] = make_uint4(0, 0, 0, 0);
        float m1 = 0.0f, m2 = 0.0f;
        if (g.p_vec) {
#pragma unroll
            for (int u = 0; u < kHeldP / 4; ++u) {
                const int qd = tid + u * nthreads;
                float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (qd < q1) v = __ldg(reinterpret_cast<const float4*>(a.p1) + qd);
                else if (qd < qtot) v = __ldg(reinterpret_cast<const float4*>(a.p2) + (qd - q1));
                held[4 * u] = v.x;
                held[4 * u + 1] = v.y;
                held[4 * u + 2] = v.z;
                held[4 * u + 3] = v.w;
            }
#pragma unroll
            for (int u = 0; u < kHeldP; ++u) {
                if (tid + (u / 4) * nthreads < q1) m1 = fmaxf(m1, fabsf(held[u]));
                else m2 = fmaxf(m2, fabsf(held[u]));
                p_bad |= !is_finite(held[u]);
            }
            for (int qd = tid + kHeldP / 4 * nthreads; qd < qtot; qd += nthreads) {  // factors beyond 64 x 64
                const float4 v = qd < q1 ? __ldg(reinterpret_cast<const float4*>(a.p1) + qd)
                                         : __ldg(reinterpret_cast<const float4*>(a.p2) + (qd - q1));
                const float m = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
                if (qd < q1) m1 = fmaxf(m1, m);
                else m2 = fmaxf(m2, m);
                p_bad |= !(is_finite(v.x) && is_finite(v.y) && is_finite(v.z) && is_finite(v.w));
            }
        } else {
#pragma unroll
            for (int u = 0; u < kHeldP; ++u) {
                const int e = tid + u * nthreads;
                held[u] = e < c1 ? __ldg(a.p1 + e) : (e < ctot ? __ldg(a.p2 + (e - c1)) : 0.0f);
            }
#pragma unroll
            for (int u = 0; u < kHeldP; ++u) {
                const int e = tid + u * nthreads;
                if (e < c1) m1 = fmaxf(m1, fabsf(held[u]));
                else m2 = fmaxf(m2, fabsf(held[u]));
                p_bad |= !is_finite(held[u]);
            }
            for (int e = tid + kHeldP * nthreads; e < ctot; e += nthreads) {  // factors beyond 64 x 64
                const float v = e < c1 ? __ldg(a.p1 + e) : __ldg(a.p2 + (e - c1));
                if (e < c1) m1 = fmaxf(m1, fabsf(v));
                else m2 = fmaxf(m2, fabsf(v));
                p_bad |= !is_finite(v);
            }
        }
        m1 = warp_max(m1);
        m2 = warp_max(m2);
        if (lane == 0) {
            s_pmax[0][warp] = m1;
            s_pmax[1][warp] = m2;
        }
    }
    // Also orders the zeroing before the copies.
    const bool p_nonfinite = __syncthreads_or(p_bad) != 0;
    int pa, pb;
    {
        float m1 = 0.0f, m2 = 0.0f;
        for (int w = 0; w < nwarps; ++w) {
            m1 = fmaxf(m1, s_pmax[0][w]);
            m2 = fmaxf(m2, s_pmax[1][w]);
        }
        pa = range_exponent(m1, 1);
        pb = range_exponent(m2, 1);
        const float f1 = pow2(-pa), f2 = pow2(-pb);
        // Entry e as (row, column): e / n by a float reciprocal, exact for e < 2^15, n <= 128.
        const float r1 = 1.0f / n1, r2 = 1.0f / n2;
        auto put = [&](int e, float v) {
            if (e < c1) {
                const int k = static_cast<int>((e + 0.5f) * r1), i = e - k * n1;
                p1s[k * ld1 + i] = __float2half_rn(__fmul_rn(v, f1));
            } else if (e < ctot) {
                const int e2 = e - c1, l = static_cast<int>((e2 + 0.5f) * r2), j = e2 - l * n2;
                p2s[l * ld2 + j] = __float2half_rn(__fmul_rn(v, f2));
            }
        };
        // Four entries e .. e + 3 of one row (p_vec): the same roundings as put, one 8-byte store.
        auto put4 = [&](int qd, float v0, float v1, float v2, float v3) {
            const int e = 4 * qd;
            if (qd < q1) {
                const int k = static_cast<int>((e + 0.5f) * r1), i = e - k * n1;
                *reinterpret_cast<uint2*>(p1s + k * ld1 + i) = make_uint2(
                    pack_half2(__fmul_rn(v0, f1), __fmul_rn(v1, f1)), pack_half2(__fmul_rn(v2, f1), __fmul_rn(v3, f1)));
            } else if (qd < qtot) {
                const int e2 = e - c1, l = static_cast<int>((e2 + 0.5f) * r2), j = e2 - l * n2;
                *reinterpret_cast<uint2*>(p2s + l * ld2 + j) = make_uint2(
                    pack_half2(__fmul_rn(v0, f2), __fmul_rn(v1, f2)), pack_half2(__fmul_rn(v2, f2), __fmul_rn(v3, f2)));
            }
        };
        if (g.p_vec) {
#pragma unroll
            for (int u = 0; u < kHeldP / 4; ++u)
                put4(tid + u * nthreads, held[4 * u], held[4 * u + 1], held[4 * u + 2], held[4 * u + 3]);
            for (int qd = tid + kHeldP / 4 * nthreads; qd < qtot; qd += nthreads) {
                const float4 v = qd < q1 ? __ldg(reinterpret_cast<const float4*>(a.p1) + qd)
                                         : __ldg(reinterpret_cast<const float4*>(a.p2) + (qd - q1));
                put4(qd, v.x, v.y, v.z, v.w);
            }
        } else {
#pragma unroll
            for (int u = 0; u < kHeldP; ++u) put(tid + u * nthreads, held[u]);
            for (int e = tid + kHeldP * nthreads; e < ctot; e += nthreads)
                put(e, e < c1 ? __ldg(a.p1 + e) : __ldg(a.p2 + (e - c1)));
        }
    }
    __syncthreads();

    // P1'^T[16 strip .., 16 kc ..] as A fragments, from P1' stored row-major (k, i) through
    // ldmatrix.trans: matrix q of the x4 (lanes 8q .. 8q+7) is rows k + 8 (q >> 1), columns
    // i + 8 (q & 1), i.e. a0 = (i 0-7, k 0-7), a1 = (i 8-15, k 0-7), a2 = (i 0-7, k 8-15), a3.
    // With Y's strip at 64 floats a thread (NC == 8) they do not fit beside it (128 registers at
    // 16 warps): those kernels load them from shared memory per use, as v1 did.
    constexpr bool kARegs = NC == 4;
    constexpr int kAFrags = kARegs ? SMAX : 1;
    unsigned afr[kAFrags][4];
    const unsigned a_base = smem_addr(p1s + ((lane & 7) + 8 * (lane >> 4)) * ld1 + 16 * strip + 8 * ((lane >> 3) & 1));
#pragma unroll
    for (int kc = 0; kc < kAFrags; ++kc) {
        if (kARegs && kc < S) {
            ldsm_x4_trans(a_base + kc * 32 * ld1, afr[kc]);
        } else {
            afr[kc][0] = afr[kc][1] = afr[kc][2] = afr[kc][3] = 0u;
        }
    }

    const int frag_row = lane & 15, frag_col = (lane >> 4) << 3;  // ldmatrix.x4 row addresses
    const unsigned x_base = smem_addr(xs + frag_row * ld2 + frag_col);
    const unsigned p2_base = smem_addr(p2s + frag_row * ld2 + frag_col);
    const int i0 = strip * 16 + (lane >> 2), jq = 2 * (lane & 3);  // accumulator element positions

    Findings found;
    for (; row < a.rows; row += row_step) {
        if (g.cp_async) cp_async_wait_all();
        named_barrier(bar, gthreads);  // B1: the staged row is complete

        // 1. max |x| (finite entries) and the first non-finite x.
        float xm;
        unsigned long long badx;
        token_range<XT>(stage, g, gtid, gthreads, xm, badx);
        xm = warp_max(xm);
        if (__any_sync(0xffffffffu, badx != kNoIndex)) badx = warp_min_u64(badx);
        if (lane == 0) {
            s_xmax[warp] = xm;
            s_badx[warp] = badx;
        }
        // B2, which also tells whether some warp found a NaN/Inf x (only then are the slots read).
        const bool any_bad_x = named_barrier_or(bar, gthreads, lane == 0 && badx != kNoIndex);
        float xmax = 0.0f;
#pragma unroll
        for (int w = 0; w < SMAX; ++w)
            if (w < S) xmax = fmaxf(xmax, s_xmax[wfirst + w]);
        unsigned long long bad_x = kNoIndex;
        if (any_bad_x)
            for (int w = 0; w < S; ++w) Findings::keep_min(bad_x, s_badx[wfirst + w]);
        const int ex = range_exponent(xmax, 7);

        // 2. X' into the group's tile.
        scale_token<XT>(stage, xs, g, ex, gtid, gthreads);
        named_barrier(bar, gthreads);  // B3: X' complete, the staging buffer free
        if (row + row_step < a.rows) stage_row<XT>(a, g, row + row_step, stage, gtid, gthreads);

        // 3. W = P1'^T X' in 16-column chunks, each chunk at once the A fragment of Y' += W P2'.
        float acc[2 * NC][4];
#pragma unroll
        for (int t8 = 0; t8 < 2 * NC; ++t8)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[t8][r] = 0.0f;
#pragma unroll 1
        for (int lc = 0; lc < g.chunks2; ++lc) {
            float w0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, w1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const unsigned x_chunk = x_base + lc * 32;
#pragma unroll
            for (int kc = 0; kc < SMAX; ++kc) {
                if (kc < S) {
                    unsigned bf[4];
                    ldsm_x4_trans(x_chunk + kc * 32 * ld2, bf);  // X'[16 kc.., 16 lc..]
                    if constexpr (kARegs) {
                        mma_f16(w0, afr[kc], bf[0], bf[1]);
                        mma_f16(w1, afr[kc], bf[2], bf[3]);
                    } else {
                        unsigned af[4];
                        ldsm_x4_trans(a_base + kc * 32 * ld1, af);  // P1'^T[16 strip.., 16 kc..]
                        mma_f16(w0, af, bf[0], bf[1]);
                        mma_f16(w1, af, bf[2], bf[3]);
                    }
                }
            }
            const unsigned wa[4] = {pack_half2(w0[0], w0[1]), pack_half2(w0[2], w0[3]), pack_half2(w1[0], w1[1]),
                                    pack_half2(w1[2], w1[3])};
            const unsigned p2_row = p2_base + lc * 32 * ld2;
#pragma unroll
            for (int jp = 0; jp < NC; ++jp) {
                if (jp < g.chunks2) {
                    unsigned bf[4];
                    ldsm_x4_trans(p2_row + jp * 32, bf);  // P2'[16 lc.., 16 jp..]
                    mma_f16(acc[2 * jp], wa, bf[0], bf[1]);
                    mma_f16(acc[2 * jp + 1], wa, bf[2], bf[3]);
                }
            }
        }

        // 4. Y = Y' * 2^(e + a + b). A y is NaN/Inf only through a non-finite x (reported first), a
        //    non-finite factor, or an overflow of Y' 2^shift (|Y'| < 2^23, so only for shift > 104):
        //    otherwise the probe for them is skipped. Every nonzero |Y'| is at least 2^-48 (sums of
        //    products of F16 values, each a multiple of 2^-24, stay multiples of 2^-48 through any
        //    float32 rounding), so for shift in [-78, 104] the product Y' 2^shift is exact and normal:
        //    there the factor is not applied to each Y' but folded into the token's max / min (exact)
        //    and into the reciprocal of the scale (inv 2^shift, exact where it is normal), and
        //    fast_code(Y', inv 2^shift) is fast_code(y, inv) bit for bit. Elsewhere (a uniform branch)
        //    each Y' is scaled first, as in the first kernel.
        const int shift = ex + pa + pb;
        const bool maybe_nonfinite = bad_x != kNoIndex || p_nonfinite || shift > 104;
        const bool fold = !maybe_nonfinite && shift >= -78;
        if (!fold) {
            if (shift >= -126 && shift <= 127) {
                const float f = pow2(shift);
#pragma unroll
                for (int t8 = 0; t8 < 2 * NC; ++t8)
#pragma unroll
                    for (int r = 0; r < 4; ++r) acc[t8][r] = __fmul_rn(acc[t8][r], f);
            } else {
#pragma unroll
                for (int t8 = 0; t8 < 2 * NC; ++t8)
#pragma unroll
                    for (int r = 0; r < 4; ++r) acc[t8][r] = ldexpf(acc[t8][r], shift);
            }
        }
        const float yf = fold ? pow2(shift) : 1.0f;  // y = acc * yf exactly
        // The warp's strip holds no padding entry (every row < n1, every column < n2): no masks.
        const bool full = ALL_FULL || (16 * strip + 16 <= n1 && n2 == 16 * NC);
        float hi, lo;
        unsigned long long bady = kNoIndex;
        if (!maybe_nonfinite) {
            if (full) strip_range<NC, true>(acc, i0, jq, n1, n2, hi, lo);
            else strip_range<NC, false>(acc, i0, jq, n1, n2, hi, lo);
        } else {
            // The warp's max / min over the valid entries (padding masked to -Inf / +Inf), and whether
            // any entry is NaN/Inf (y * 0 + nf turns NaN), which sends the warp through the rare
            // rescan that names the first one.
            const bool row_ok[2] = {i0 < n1, i0 + 8 < n1};
            float nf = 0.0f;
            hi = -INFINITY;
            lo = INFINITY;
#pragma unroll
            for (int t8 = 0; t8 < 2 * NC; ++t8) {
                const int j = t8 * 8 + jq;
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const float y = acc[t8][r];
                    const bool valid = ALL_FULL || (row_ok[r >> 1] && j + (r & 1) < n2);
                    hi = fmaxf(hi, valid ? y : -INFINITY);
                    lo = fminf(lo, valid ? y : INFINITY);
                    nf = __fmaf_rn(y, 0.0f, nf);
                }
            }
            if (__any_sync(0xffffffffu, nf != nf)) {  // rare: a NaN/Inf y (valid or padding)
                hi = -INFINITY;
                lo = INFINITY;
#pragma unroll
                for (int t8 = 0; t8 < 2 * NC; ++t8) {
#pragma unroll
                    for (int r = 0; r < 4; ++r) {
                        const float y = acc[t8][r];
                        const int i = i0 + (r >> 1) * 8, j = t8 * 8 + jq + (r & 1);
                        if (ALL_FULL || (i < n1 && j < n2)) {
                            if (is_finite(y)) {
                                hi = fmaxf(hi, y);
                                lo = fminf(lo, y);
                            } else {
                                Findings::keep_min(
                                    bady, static_cast<unsigned long long>(i * n2 + j) << 2 | nonfinite_class(y));
                            }
                        }
                    }
                }
                bady = warp_min_u64(bady);
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
            lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        }
        if (lane == 0) {
            s_hilo[warp] = make_float2(__fmul_rn(hi, yf), __fmul_rn(lo, yf));  // exact (above)
            s_bady[warp] = bady;
        }
        named_barrier(bar, gthreads);  // B4
        float thi = -INFINITY, tlo = INFINITY;
#pragma unroll
        for (int w = 0; w < SMAX; ++w) {
            if (w < S) {
                const float2 hl = s_hilo[wfirst + w];
                thi = fmaxf(thi, hl.x);
                tlo = fminf(tlo, hl.y);
            }
        }
        unsigned long long bad_y = kNoIndex;  // the group knows: maybe_nonfinite is the same for its warps
        if (maybe_nonfinite)
            for (int w = 0; w < S; ++w) Findings::keep_min(bad_y, s_bady[wfirst + w]);
        float scale = clipped_scale<qmax>(a, ordered(thi), ordered(tlo));
        if (gtid == 0) token_scale<qmax>(a, n, row, ordered(thi), ordered(tlo), bad_x, bad_y, scale, found);

        // 5. The codes (fast_code: no division, no float-to-int conversion) into the group's buffer;
        //    the pairs with a value next to a rounding boundary (or all of them, where a reciprocal is
        //    not normal) take the division.
        const ScaleRecip sr = scale_recip(scale);
        const float inv = __fmul_rn(sr.inv, yf);
        const bool all_slow = !sr.fast || !(inv >= 0x1p-126f && inv <= 0x1p126f);
        float dev;
        if (full) dev = strip_codes<BITS, qmax, NC, true>(acc, inv, codes, i0, jq, n1, n2);
        else dev = strip_codes<BITS, qmax, NC, false>(acc, inv, codes, i0, jq, n1, n2);
        if (__any_sync(0xffffffffu, all_slow || !(dev < fast_code_safe<qmax>()))) {  // rare
#pragma unroll
            for (int t8 = 0; t8 < 2 * NC; ++t8) {
#pragma unroll
                for (int rh = 0; rh < 2; ++rh) {
                    const float y0 = acc[t8][2 * rh], y1 = acc[t8][2 * rh + 1];
                    float pair_dev = 0.0f;
                    (void)fast_code<qmax>(y0, inv, pair_dev);
                    (void)fast_code<qmax>(y1, inv, pair_dev);
                    if (all_slow || !(pair_dev < fast_code_safe<qmax>())) {
                        const int2 c = codes_by_division(__fmul_rn(y0, yf), __fmul_rn(y1, yf), sr.s, qmax);
                        put_codes<BITS, ALL_FULL>(codes, n1, n2, i0 + rh * 8, t8 * 8 + jq, c.x, c.y);
                    }
                }
            }
        }

        // 6. Into q: each warp its own strip's rows straight away where q's rows take 16-byte stores
        //    (no group barrier), else the group's threads the whole row after B5.
        if (g.strip_store) {
            __syncwarp();
            store_strip_codes<BITS>(a, g, row, codes, strip, lane);
            __syncwarp();  // these reads before the lanes' next writes of the codes
        } else {
            named_barrier(bar, gthreads);  // B5: the codes are complete
            store_codes<BITS>(a, g, row, codes, gtid, gthreads);
            // The next token's barriers order these reads of the codes before they are rewritten.
        }
    }
    cp_async_wait_all();
    report_findings(st, found);
}

using GroupsKernel = void (*)(KronQuantizeArgs, KronGroupsGeom, StatusRef);

template <int NC, int SMAX, bool ALL_FULL>
GroupsKernel select_groups_kernel(int x_type, int bits) {
    switch (x_type) {
        case LOWBIT_F32:
            return bits == 8 ? kron_half_groups_kernel<LOWBIT_F32, 8, NC, SMAX, ALL_FULL>
                             : kron_half_groups_kernel<LOWBIT_F32, 4, NC, SMAX, ALL_FULL>;
        case LOWBIT_F16:
            return bits == 8 ? kron_half_groups_kernel<LOWBIT_F16, 8, NC, SMAX, ALL_FULL>
                             : kron_half_groups_kernel<LOWBIT_F16, 4, NC, SMAX, ALL_FULL>;
        default:
            return bits == 8 ? kron_half_groups_kernel<LOWBIT_BF16, 8, NC, SMAX, ALL_FULL>
                             : kron_half_groups_kernel<LOWBIT_BF16, 4, NC, SMAX, ALL_FULL>;
    }
}

// Per (device, kernel): the dynamic shared memory limit set so far, and the resident blocks per SM
// of (threads, smem) shapes asked before -- host queries cost microseconds, which a launch of one
// token would feel.
struct GroupsCache {
    std::mutex mutex;
    struct Limit {
        int device;
        const void* kernel;
        size_t smem;
    };
    struct Resident {
        int device;
        const void* kernel;
        int threads;
        size_t smem;
        int blocks;
    };
    std::vector<Limit> limits;
    std::vector<Resident> resident;
    struct Device {
        int device;
        int max_smem;
    };
    std::vector<Device> devices;
};

GroupsCache& groups_cache() {
    static GroupsCache cache;
    return cache;
}

}  // namespace

bool plan_kron_half_groups(const KronQuantizeArgs& a, int device, int sm_count, KronHalfGroupsPlan& plan) {
    GroupsCache& cache = groups_cache();
    KronGroupsGeom g{};
    static_cast<KronFactorTiles&>(g) = KronFactorTiles::of(a.n1, a.n2);
    g.units_per_row = a.n2 / 8;
    g.unit8 = a.n2 % 8 == 0;
    g.unit_row_magic = g.unit8 ? (65536 + g.units_per_row - 1) / g.units_per_row : 0;
    const int xb = x_bytes(a.x_type);
    g.stage_ld = (g.n * xb + 15) / 16 * 16;
    g.packed_codes = a.bits == 8 || a.n2 % 2 == 0;
    // One byte per code (plus a zero code past an odd n: the S4 padding nibble) unless packed.
    g.codes_ld = (a.bits == 4 && g.packed_codes ? (g.n / 2 + 15) : (g.n + 1 + 15)) / 16 * 16;
    const auto x = reinterpret_cast<uintptr_t>(a.x), q = reinterpret_cast<uintptr_t>(a.q);
    g.cp_async = x % 16 == 0 && (a.ldx * xb) % 16 == 0 && (int64_t(g.n) * xb) % 16 == 0;
    const int64_t q_stride = a.bits == 8 ? a.ldq : a.ldq / 2;  // bytes between rows of q
    g.q_unit = q % 16 == 0 && q_stride % 16 == 0 ? 16 : (q % 4 == 0 && q_stride % 4 == 0 ? 4 : 1);
    // A strip's codes start at 16 n2 (S8) or 8 n2 (S4, n2 even) bytes a strip: on 16 bytes.
    g.strip_store = g.packed_codes && g.q_unit == 16;
    g.p_vec = a.n1 % 4 == 0 && a.n2 % 4 == 0 && reinterpret_cast<uintptr_t>(a.p1) % 16 == 0 &&
              reinterpret_cast<uintptr_t>(a.p2) % 16 == 0;
    g.fixed_bytes = 2 * (g.p1 * g.ld1 + g.p2 * g.ld2);
    g.group_bytes = 2 * g.p1 * g.ld2 + g.stage_ld + g.codes_ld;

    int max_smem = -1;
    {
        std::lock_guard<std::mutex> lock(cache.mutex);
        for (const auto& d : cache.devices)
            if (d.device == device) max_smem = d.max_smem;
    }
    if (max_smem < 0) {
        LOWBIT_CUDA_CHECK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
        std::lock_guard<std::mutex> lock(cache.mutex);
        cache.devices.push_back(GroupsCache::Device{device, max_smem});
    }
    const int static_bytes = kGroupsMaxWarps * (4 + 8 + 8 + 4 + 4 + 8);
    const int64_t budget = int64_t(max_smem) - static_bytes;
    if (int64_t(g.fixed_bytes) + g.group_bytes > budget) return false;

    // Groups per block: up to 16 warps, and what shared memory holds.
    const int nc = g.chunks2 <= 4 ? 4 : 8, smax = g.strips <= 4 ? 4 : (g.strips <= 6 ? 6 : 8);
    int groups = std::max(1, std::min(kGroupsMaxGroups, groups_max_threads(nc, smax) / 32 / g.strips));
    groups = static_cast<int>(std::min<int64_t>(groups, (budget - g.fixed_bytes) / g.group_bytes));
    g.groups = groups;  // also for few tokens: the idle groups' threads share the factor conversion

    // Strips without padding (ALL_FULL) have their own instantiations where they measured faster
    // (H100, M = 2048): p1 <= 64 with n2 = 64 (64 x 64: 26.3 -> 23.9 us; 48 x 64) or n2 = 128
    // (64 x 128: 66.3 -> 62.8 us). Not with 7-8 warps a group (112 x 128: 121 -> 139 us; at 128
    // registers that instantiation spilled more than the masked one).
    const bool all_full = a.n1 % 16 == 0 && a.n2 == 16 * nc;
    GroupsKernel kernel;
    if (all_full && smax == 4)
        kernel = nc == 4 ? select_groups_kernel<4, 4, true>(a.x_type, a.bits)
                         : select_groups_kernel<8, 4, true>(a.x_type, a.bits);
    else if (nc == 4)
        kernel = smax == 4 ? select_groups_kernel<4, 4, false>(a.x_type, a.bits)
                 : smax == 6 ? select_groups_kernel<4, 6, false>(a.x_type, a.bits)
                             : select_groups_kernel<4, 8, false>(a.x_type, a.bits);
    else
        kernel = smax == 4 ? select_groups_kernel<8, 4, false>(a.x_type, a.bits)
                 : smax == 6 ? select_groups_kernel<8, 6, false>(a.x_type, a.bits)
                             : select_groups_kernel<8, 8, false>(a.x_type, a.bits);
    const void* kp = reinterpret_cast<const void*>(kernel);
    const int threads = 32 * g.strips * groups;
    const size_t smem = static_cast<size_t>(g.fixed_bytes) + size_t(g.group_bytes) * groups;

    int per_sm = -1;
    {
        std::lock_guard<std::mutex> lock(cache.mutex);
        bool limit_ok = smem + static_bytes <= 48 * 1024;
        for (const auto& l : cache.limits)
            if (l.device == device && l.kernel == kp && l.smem >= smem) limit_ok = true;
        if (!limit_ok) {
            LOWBIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   max_smem - static_bytes));
            cache.limits.push_back(GroupsCache::Limit{device, kp, size_t(max_smem - static_bytes)});
        }
        for (const auto& r : cache.resident)
            if (r.device == device && r.kernel == kp && r.threads == threads && r.smem == smem) per_sm = r.blocks;
        if (per_sm < 0) {
            LOWBIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
            cache.resident.push_back(GroupsCache::Resident{device, kp, threads, smem, per_sm});
        }
    }
    const int64_t tiles = (a.rows + groups - 1) / groups;
    plan.g = g;
    plan.kernel = kp;
    plan.threads = threads;
    plan.smem = smem;
    plan.blocks = grid_for(tiles, int64_t(sm_count) * std::max(1, per_sm));
    return true;
}

void launch_kron_half_groups(const KronQuantizeArgs& a, const KronHalfGroupsPlan& plan, const LaunchEnv& env) {
    const GroupsKernel kernel = reinterpret_cast<GroupsKernel>(const_cast<void*>(plan.kernel));
    kernel<<<plan.blocks, plan.threads, plan.smem, env.stream>>>(a, plan.g, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("kron_half_groups_kernel");
}

}  // namespace cuda
}  // namespace lowbit
