// gemv_stream.cu -- the weight-streaming GEMM for decode: out[M,N] = epilogue(A[M,K] * W[N,K]^T)
// for M <= kStreamMaxM tokens, weights S8, packed S4, or DGQ 4-bit codes, activations S8 or (with
// S4 weights: W4A4) packed S4 (gemv_stream.cuh).
//
// At decode batch sizes the product is bound by reading W once from device memory; the
// kernel is built so that every SM keeps many 128-bit weight loads in flight and does little
// else per byte:
//
//   grid       (ceil(N / 128), splits): a block owns 128 output channels (8 warps x 16) and one
//              split of K. The grid is at most one wave of resident blocks: K is split only as
//              far as the channel tiles leave block slots empty (N = 4096: 32 tiles x 8 splits on
//              132 SMs x 2 blocks). Measured on an H100, going from 2.5 waves to one wave took
//              W4A8 at 8192 x 28672 from 80% to 88% of the copy bandwidth.
//   shared     the activations of the block's split, M (padded to 8 or 16) x 2048 K values at a
//              time (a stage), staged once per stage and read by all 8 warps; for 4-bit weights
//              each group of 8 consecutive K values is stored permuted as (0,2,4,6,1,3,5,7), the
//              order the weights unpack to. Each stage's first weight loads are issued before
//              its staging, so the staging hides under them. S4 activations (W4A4) are read as
//              16 packed bytes per 32 K values and expanded to INT8 on the way in (the even and
//              odd nibbles of a word are already the permuted order; each byte is sign-extended
//              in place), so the MMAs and everything after the staging are W4A8's: W4A4 decode
//              reads the same weight bytes and does the same math per byte as W4A8.
//   warp       16 weight rows (output channels) x the split: lane (g, t) = (lane / 4, lane % 4)
//              reads 16 bytes of rows g and g + 8 at byte offset 64 * step + 16 * t with one
//              128-bit load each (ld.global.nc, no L1 allocation), kUnroll steps in flight.
//              (Tried: two software-pipelined half batches, each reloaded as soon as it was
//              used: neutral for S8 / S4, 10-35% slower for DGQ on the H100.)
//   math       tensor cores: mma.m16n8k32 (s8 x s8 -> s32) with the weights as the 16 x 32 A
//              operand and up to 8 tokens as the 32 x 8 B operand (one MMA per 8 tokens). Which
//              K index sits in which fragment slot does not matter for a dot product as long
//              as A and B agree: a lane's 16 weight bytes feed its own A slots, and the same
//              lane's activation bytes (same K values, same order) its B slots.
//   unpack     S4: the ×16 trick -- a nibble moved to the top of its byte is the int8 16·q,
//              so (w << 4) & 0xF0F0F0F0 and w & 0xF0F0F0F0 give the even and odd elements of a
//              word as 16·q with one or two instructions; the accumulator is 16·acc and the
//              exact acc is recovered with an arithmetic shift by 4 (exact while |16·acc| <
//              2^31: K < 131072 with S8 activations (|q·a| <= 1024), K < 2^21 with S4 ones
//              (|q·a| <= 64), a precondition, so the result is the CPU backend's exactly).
//              DGQ: W8 = low 8 bits of (u - z)·S2 with u the unsigned code (signed codes:
//              u = q + 8, z = 8). Four 4-bit codes at a time sit in the two 16-bit lanes of a
//              word, one integer multiply-add gives u·S2 + D per lane with D = (-z·S2) mod 256
//              (u·S2 + D <= 15·255 + 255 < 2^16: no carry between lanes), and the low byte of
//              each lane is (u - z)·S2 mod 256 -- lowbit.h's wrap, integers only.
//              DGQ with group % 128 == 0 (folded path): a step's 128 K values are one group per
//              row; when no code of the warp's 16 groups can wrap ((u - z)·S2 in [-128, 127] for
//              all u in 0..15, checked per group from S2 and z), the MMAs take the raw codes u
//              and acc += S2·sum(a·u) - S2·z·sum(a), with sum(a) per token and step summed at
//              staging: the same integer, about half the ALU work. Otherwise the expansion above.
//              Signed codes (z = 8) fold further: (u - 8)·S2 = q·S2 with q the signed nibble, so
//              the MMAs take S4's ×16 operands and acc += S2·(sum(a·16q) >> 4), no zero-point
//              term (H100, DecodeBench, same session: DGQ 2-7% faster at M = 1 and 16 than the
//              unsigned form, which LOWBIT_DGQ_FOLD=zero-point keeps).
//   reduce     int32 accumulators. With splits > 1 on sm_90 (at most 8 splits, all clusters
//              resident at once) the splits of a channel tile are one thread block cluster and
//              reduce through distributed shared memory (cluster_reduce), each block finishing
//              a slice of the tile. Otherwise each block stores its partial sums (plain 8-byte
//              stores) into its own slice of an int32 workspace, and the last block of a channel
//              tile to arrive (an arrival counter, one acq_rel atomic per block: last_to_arrive;
//              reset by that block for the next launch) adds the other splits' slices to its
//              registers (integer addition is associative: the
//              same bits whatever the split and order) and applies the epilogue. Measured on the
//              H100 (DecodeBench, same session): the slices replaced atomic adds into one shared
//              int32 sum (LOWBIT_STREAM_REDUCE=atomic keeps those), which cost 2048 atomics per
//              block at M = 16 and made M = 16 4.9-5.4 us slower than M = 1 on the shapes that
//              use them, against 1.2-2.8 us on the others.
//   epilogue   epilogue.cuh, the CPU backend's float32 steps: bit-identical outputs. A lane's four
//              outputs load their scales / bias / zero-point terms together before the first
//              store (emit_tile: one L2 round trip, not four).
//   launch     on sm_90 with programmatic dependent launch (pdl.cuh): the grid may start while the
//              kernel in front of it still runs. A block first requests its first batch of weights
//              (only when StreamProblem::weights_early: the previous operation did not use the
//              weight buffers, op_log.h), then waits for that kernel (pdl_wait) before it reads the
//              activations or touches the workspace or the output, then lets the kernel behind it
//              start (pdl_trigger). Measured on the H100 (DecodeBench, same session, LOWBIT_PDL=off
//              in its own process): 8-20% less time at M = 1 and 16 on every shape but the two
//              largest (1-6% there); the weight request before the wait beat waiting first by
//              2-10%, and prefetching the rest of the first stage into L2 lost up to 30%.
//
// Preconditions (stream_refusal; otherwise the dispatch runs the portable kernel):
//   compute capability >= 8.0 (mma.m16n8k32 on s8); 1 <= M <= kStreamMaxM; N, K < 2^31;
//   W 16-byte aligned with rows of a multiple of 16 bytes: S8: K % 16 == 0, ldw % 16 == 0;
//   S4 / DGQ: K % 32 == 0, ldw % 32 == 0 (nibbles); S4: K < 131072 (S4 activations: K < 2^21);
//   DGQ: group % 32 == 0. S4 activations only with S4 weights.
//   A, the scales and the output may have any stride and alignment (S4 activations: any even lda).
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "bitplane_epilogue.cuh"
#include "cluster_barrier.cuh"
#include "cuda_check.h"
#include "gemv_stream.cuh"
#include "pdl.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = 16;                        // the M of mma.m16n8k32
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;    // 128 output channels per block
constexpr int kStepBytes = 64;                          // per row and warp step: 4 lanes x 16 bytes
constexpr int kStageElems = 2048;                       // K values of the activations staged at a time
constexpr int kMinSliceSteps = 8;                       // a slice is at least 8 steps (2 x kUnroll)
constexpr int kMinSliceStepsW2 = 2;                     // W2: 2 steps of 512 K values (1024, as S4's 8 x 128)
constexpr int kMinBlocksPerSm = 2;                      // register cap: 2 blocks (16 warps) per SM
constexpr int kMaxCluster = 8;                          // the portable cluster size limit (cluster_reduce)
// W2 masked codes (W2Codes::Masked): a block's sum of scale 64 takes at most 192·255 per K value in
// a quarter of its K slice, so |accs[3]| <= 12240·slice < 2^31 whenever K (>= every slice) is at
// most this; larger K keeps the shifted code words.
constexpr int kW2ScaledMaxK = 131072;

// How the W2 path turns code pairs into MMA operands (Batch::compute_w2).
enum class W2Codes { Unsigned, Signed, Masked };

template <StreamFormat F>
struct Fmt {
    // K values per weight byte (W2: per byte of one of the two plane rows of a channel).
    static constexpr int kElemsPerByte = F == StreamFormat::S8 ? 1 : is_w2(F) ? 8 : 2;
    // Steps whose weight loads are in flight together (W2: 4 x 16 bytes per lane and step, two
    // planes of two rows, and two batches double-buffered: w2_main_loop).
    static constexpr int kUnroll = is_w2(F) ? 2 : 4;
};

// Shared row padding: lanes (g, t) read 16 (S8) or 2 x 16 (4-bit) bytes at 16·t (32·t) of token
// row g; a row stride of 64 resp. 16 bytes past a multiple of 128 puts the 8 lanes of each
// 128-bit shared load phase on distinct banks.
template <StreamFormat F>
constexpr int kActStride = kStageElems + (F == StreamFormat::S8 ? 64 : 16);
// W2: the activations of lane t's 128 K values of step s (4 groups of 32, w4 = 0..3) lie at
// 512·s + 128·w4 + 32·t of the token's row (the lanes' groups interleaved), so that the 16-byte
// reads of lanes (g, t), (g + 1, t) of one phase hit distinct banks with the row stride above.
constexpr int kStageSteps128 = kStageElems / 128;  // 128-value steps of a stage (DGQ step sums)

struct Params {
    const int8_t* a;
    int64_t lda;
    const uint8_t* w;
    int64_t ldw_bytes;
    const uint8_t* s2;  // DGQ group scales, row-major N x groups
    const int8_t* z;    // DGQ zero points or null
    int groups;
    int group;
    bool dgq_fold;      // DGQ with group % 128 == 0: one group per row and step (the folded path)
    bool dgq_direct;    // the folded path with signed codes (no zero points) on S4's ×16 operands
    int m, n, k;
    int slice;          // K values per block (a multiple of the step)
    int splits;
    bool a_aligned16;   // every activation row starts 16-byte aligned (S4 activations: lda / 2 bytes per row)
    Epilogue ep;
    BitplaneGemmArgs bp;  // W2 / W2xU8: the bit-plane request (its epilogue and activation planes)
    int* partial;       // splits > 1 without a cluster: (tiles x splits) x 128 x tokens int32 partial sums
                        // (slices: one per block; atomic: tiles x 128 x tokens, zero between launches)
    unsigned* arrivals; // splits > 1 without a cluster: the tiles' arrival counters (zero between launches)
    bool slices;        // the partial sums go to per-block slices (else atomics into one sum per tile)
    bool cluster;       // splits > 1 reduced in a thread block cluster (cluster_reduce), no workspace
    bool prefetch;      // the first weight batch is requested before pdl_wait (StreamProblem::weights_early)
    bool w2_scaled;     // W2, M <= 8: unsigned codes masked in place (w2_scaled_allowed), one sum per scale
};

__device__ __forceinline__ uint4 load_stream(const uint8_t* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

// c += A(16 x 32: a0 a1 a2 a3) * B(32 x 8: b0 b1), int32. A is s8, or u8 when A_U8 (W2's unsigned
// codes in place, 4^s·code up to 192); B is s8, or u8 when B_U8 (W2xU8: unsigned 8-bit
// activations, 0..255).
template <bool A_U8 = false, bool B_U8 = false>
__device__ __forceinline__ void mma_i8(int (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                       unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define LOWBIT_MMA_I8(TYPES)                                                                                  \
    asm("mma.sync.aligned.m16n8k32.row.col.s32." TYPES ".s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, " \
        "{%0, %1, %2, %3};"                                                                                   \
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])                                                      \
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1))
    if constexpr (A_U8 && B_U8) LOWBIT_MMA_I8("u8.u8");
    else if constexpr (A_U8) LOWBIT_MMA_I8("u8.s8");
    else if constexpr (B_U8) LOWBIT_MMA_I8("s8.u8");
    else LOWBIT_MMA_I8("s8.s8");
#undef LOWBIT_MMA_I8
#else
    (void)c, (void)a0, (void)a1, (void)a2, (void)a3, (void)b0, (void)b1;
    __trap();  // unreachable: stream_refusal keeps devices below 8.0 off this kernel
#endif
}

// W2: two plane words (bit c of p0 / p1 = bit 0 / 1 of the code of K value c, 32 values) as two
// words of 2-bit codes in pairs of bits: even holds the codes of K values 0, 2, .., 30 (code of
// 2m at bits 2m, 2m+1), odd those of 1, 3, .., 31. Then (even >> 2s) & 0x03030303 has in byte i
// the code of K value 8i + 2s, and odd's the code of 8i + 2s + 1.
__device__ __forceinline__ void interleave_planes(unsigned p0, unsigned p1, unsigned& even, unsigned& odd) {
    even = (p0 & 0x55555555u) | ((p1 << 1) & 0xAAAAAAAAu);
    odd = ((p0 >> 1) & 0x55555555u) | (p1 & 0xAAAAAAAAu);
}

// Byte i of the result: the 2-bit code in bits 2s, 2s+1 of byte i of w, as an INT8 (unsigned:
// 0..3; signed: two's complement, -2..1, the top bit copied up).
template <bool SIGNED>
__device__ __forceinline__ unsigned code_bytes(unsigned w, int s) {
    const unsigned v = (w >> (2 * s)) & 0x03030303u;
    return SIGNED ? v | (v & 0x02020202u) * 0x7Eu : v;
}

// DGQ: 8 codes (word w, code i in bits 4i..4i+3, already unsigned u) to their INT8 weights
// (u - z)·S2 mod 256: even = codes 0,2,4,6 and odd = codes 1,3,5,7, byte by byte. d2 holds
// D = (-z·S2) mod 256 in both 16-bit lanes.
__device__ __forceinline__ void expand_dgq(unsigned w, unsigned s2, unsigned d2, unsigned& even, unsigned& odd) {
    const unsigned y0 = (w & 0x000F000Fu) * s2 + d2;          // codes 0 and 4
    const unsigned y1 = ((w >> 4) & 0x000F000Fu) * s2 + d2;   // codes 1 and 5
    const unsigned y2 = ((w >> 8) & 0x000F000Fu) * s2 + d2;   // codes 2 and 6
    const unsigned y3 = ((w >> 12) & 0x000F000Fu) * s2 + d2;  // codes 3 and 7
    even = __byte_perm(y0, y2, 0x6240);
    odd = __byte_perm(y1, y3, 0x6240);
}

// DGQ group slot i (row-major N x groups): S2 | (z & 0xFF) << 8 | D << 16 with
// D = (-z·S2) mod 256 (z = 8 for signed codes, read as u = q + 8).
__device__ __forceinline__ unsigned group_word(const Params& p, int64_t i) {
    const int s2 = __ldg(p.s2 + i);
    const int z = p.z != nullptr ? __ldg(p.z + i) : 8;
    return static_cast<unsigned>(s2) | (static_cast<unsigned>(z) & 0xFFu) << 8 |
           (static_cast<unsigned>(-z * s2) & 0xFFu) << 16;
}

// Whether (u - z)·S2 lies in [-128, 127] for every code u in 0..15, i.e. no INT8 weight of the
// group wraps: then sum_c a_c·W8_c = S2·sum_c a_c·u_c - S2·z·sum_c a_c exactly.
__device__ __forceinline__ bool group_never_wraps(unsigned word) {
    const int s2 = static_cast<int>(word & 0xFFu), z = static_cast<int8_t>((word >> 8) & 0xFFu);
    return -z * s2 >= -128 && (15 - z) * s2 <= 127;
}

// The activations [k0, k0 + kcount) of every token into shared memory, zero past M and past
// kcount (up to kStageElems); 4-bit formats permute each group of 8. All loads of a thread are
// issued before the first store, so staging costs about one L2 round trip.
// DGQ also writes step_sums[token][step] = the sum of the token's 128 activations of each step
// (for the folded path with zero points, the only one that reads them), reduced over the 8 lanes
// that hold a step's 8 units.
template <StreamFormat F, int NT>
__device__ __forceinline__ void stage_activations(const Params& p, int k0, int kcount, unsigned char* act,
                                                  int (*step_sums)[kStageSteps128]) {
    constexpr int kUnitsPerRow = kStageElems / 16;  // 16-byte units
    constexpr int kIters = NT * 8 * kUnitsPerRow / kThreads;
    static_assert(NT * 8 * kUnitsPerRow % kThreads == 0, "staging split");
    uint4 v[kIters];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
        const int u = it * kThreads + threadIdx.x;
        const int i = u / kUnitsPerRow, c = u % kUnitsPerRow * 16;
        v[it] = make_uint4(0u, 0u, 0u, 0u);
        if (i < p.m && c < kcount) {  // kcount is a multiple of 16: the unit lies inside K
            const int8_t* src = p.a + static_cast<int64_t>(i) * p.lda + k0 + c;
            if (p.a_aligned16) {
                v[it] = *reinterpret_cast<const uint4*>(src);
            } else {
                unsigned w[4];
                const unsigned char* b = reinterpret_cast<const unsigned char*>(src);
#pragma unroll
                for (int q = 0; q < 4; ++q)
                    w[q] = b[4 * q] | b[4 * q + 1] << 8 | b[4 * q + 2] << 16 | static_cast<unsigned>(b[4 * q + 3]) << 24;
                v[it] = make_uint4(w[0], w[1], w[2], w[3]);
            }
        }
    }
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
        const int u = it * kThreads + threadIdx.x;
        const int i = u / kUnitsPerRow, c = u % kUnitsPerRow * 16;
        uint4 x = v[it];
        if constexpr (F != StreamFormat::S8) {  // K values (0,2,4,6), (1,3,5,7) of each group of 8
            x = make_uint4(__byte_perm(v[it].x, v[it].y, 0x6420), __byte_perm(v[it].x, v[it].y, 0x7531),
                           __byte_perm(v[it].z, v[it].w, 0x6420), __byte_perm(v[it].z, v[it].w, 0x7531));
        }
        *reinterpret_cast<uint4*>(act + i * kActStride<F> + c) = x;
        if constexpr (F == StreamFormat::Dgq) {
            if (p.dgq_fold && !p.dgq_direct) {  // block-uniform
                const int ones = 0x01010101;
                int sum = __dp4a(static_cast<int>(x.x), ones, 0);
                sum = __dp4a(static_cast<int>(x.y), ones, sum);
                sum = __dp4a(static_cast<int>(x.z), ones, sum);
                sum = __dp4a(static_cast<int>(x.w), ones, sum);
#pragma unroll
                for (int d = 1; d < 8; d *= 2) sum += __shfl_xor_sync(0xffffffffu, sum, d);
                if (threadIdx.x % 8 == 0) step_sums[i][c / 128] = sum;
            }
        }
    }
}

// Four 8 x 8 bit matrices transposed at once: matrix i is byte i of r[0..7] (row a = byte i of
// r[a], column c = bit c). Afterwards bit a of byte i of r[c] is what bit c of byte i of r[a] was.
// Each round swaps the off-diagonal k x k blocks of every 2k x 2k block (k = 4, 2, 1).
__device__ __forceinline__ void transpose_bytes_8x8(unsigned (&r)[8]) {
#pragma unroll
    for (int k = 4; k >= 1; k /= 2) {
        const unsigned mask = k == 4 ? 0x0F0F0F0Fu : k == 2 ? 0x33333333u : 0x55555555u;
#pragma unroll
        for (int a = 0; a < 8; ++a) {
            if (a & k) continue;
            const unsigned t = ((r[a] >> k) ^ r[a + k]) & mask;
            r[a + k] ^= t;
            r[a] ^= t << k;
        }
    }
}

// W2: the activation planes [k0, k0 + kcount) of every token (p = bp.x_bits planes of 32-bit
// words, lowbit.h's layout) into shared memory as one byte per K value, zero past M and past
// kcount (a multiple of 128). A unit is a group of 32 K values: its p plane words are read
// (all loads of a thread first), and byte i of output word jj (jj = 0..7) is the value of K
// value 8i + jj, the order code_bytes gives the weights: sum over planes a of bit 8i + jj of
// plane a, shifted to bit a; a signed operand with p < 8 is sign-extended from bit p - 1 (at
// p = 8 the byte is the two's complement value already). The 32 bytes go to the interleaved
// place of the group (kActStride's comment).
template <int NT>
__device__ __forceinline__ void stage_plane_activations(const Params& p, int k0, int kcount, unsigned char* act) {
    constexpr int kGroups = kStageElems / 32;
    constexpr int kIters = NT * 8 * kGroups / kThreads;
    constexpr int kStride = kActStride<StreamFormat::W2>;
    static_assert(NT * 8 * kGroups % kThreads == 0, "staging split");
    const int bits = p.bp.x_bits;
    const unsigned* x = reinterpret_cast<const unsigned*>(p.bp.x);
    const int64_t ld32 = p.bp.ldx * 2;
    unsigned w[kIters][8];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
        const int u = it * kThreads + threadIdx.x;
        const int i = u / kGroups, grp = u % kGroups;
        const bool in = i < p.m && grp * 32 < kcount;
        const unsigned* src = x + static_cast<int64_t>(i) * bits * ld32 + (k0 / 32 + grp);
#pragma unroll
        for (int a = 0; a < 8; ++a) w[it][a] = in && a < bits ? __ldg(src + a * ld32) : 0u;
    }
    const unsigned sign_fill = p.bp.x_signed && bits < 8 ? (0xFFu << bits) & 0xFFu : 0u;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
        const int u = it * kThreads + threadIdx.x;
        const int i = u / kGroups, grp = u % kGroups;
        unsigned o[8] = {};
        if (i < p.m) {  // tokens past M (zeros) skip the transposition
            // Byte i of plane word a is row a of an 8 x 8 bit matrix (column jj = bit jj); the
            // four matrices of a word are transposed at once by three rounds of block swaps
            // (4 x 4, 2 x 2, 1 x 1 blocks), after which row jj is output word jj. Planes past
            // `bits` are zero words, so their rows come out as zero bits.
#pragma unroll
            for (int a = 0; a < 8; ++a) o[a] = w[it][a];
            transpose_bytes_8x8(o);
            if (sign_fill != 0u) {
#pragma unroll
                for (int jj = 0; jj < 8; ++jj) o[jj] |= ((o[jj] >> (bits - 1)) & 0x01010101u) * sign_fill;
            }
        }
        const int s = grp / 16, t = grp / 4 % 4, w4 = grp % 4;
        uint4* dst = reinterpret_cast<uint4*>(act + i * kStride + s * 512 + w4 * 128 + t * 32);
        dst[0] = make_uint4(o[0], o[1], o[2], o[3]);
        dst[1] = make_uint4(o[4], o[5], o[6], o[7]);
    }
}

// W4A4: the packed S4 activations [k0, k0 + kcount) of every token into shared memory as INT8, in
// the layout stage_activations writes for 4-bit weights (each group of 8 K values permuted as
// (0,2,4,6,1,3,5,7)), zero past M. A unit is 32 K values: 16 packed bytes in, 32 bytes out. A
// nibble word holds one group of 8 (code i in bits 4i..4i+3): w & 0x0F0F0F0F is codes 0,2,4,6 in
// bytes 0..3 and (w >> 4) & 0x0F0F0F0F codes 1,3,5,7 -- the permuted order already -- and a byte b
// (0..15) is sign-extended in place by OR-ing (b & 8) * 0x1E (0xF0 or 0, no carry out of the
// byte). kcount is a multiple of 32 (K % 32 == 0 and the slices are whole steps), so a unit never
// straddles K. All loads of a thread are issued before the first store, as for S8.
template <int NT>
__device__ __forceinline__ void stage_s4_activations(const Params& p, int k0, int kcount, unsigned char* act) {
    constexpr int kUnitsPerRow = kStageElems / 32;
    constexpr int kIters = NT * 8 * kUnitsPerRow / kThreads;
    constexpr int kStride = kActStride<StreamFormat::S4>;
    static_assert(NT * 8 * kUnitsPerRow % kThreads == 0, "staging split");
    const unsigned char* a = reinterpret_cast<const unsigned char*>(p.a);
    uint4 v[kIters];
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
        const int u = it * kThreads + threadIdx.x;
        const int i = u / kUnitsPerRow, c = u % kUnitsPerRow * 32;
        v[it] = make_uint4(0u, 0u, 0u, 0u);
        if (i < p.m && c < kcount) {
            const unsigned char* src = a + static_cast<int64_t>(i) * (p.lda / 2) + (k0 + c) / 2;
            if (p.a_aligned16) {
                v[it] = *reinterpret_cast<const uint4*>(src);
            } else {
                unsigned w[4];
#pragma unroll
                for (int q = 0; q < 4; ++q)
                    w[q] = src[4 * q] | src[4 * q + 1] << 8 | src[4 * q + 2] << 16 |
                           static_cast<unsigned>(src[4 * q + 3]) << 24;
                v[it] = make_uint4(w[0], w[1], w[2], w[3]);
            }
        }
    }
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
        const int u = it * kThreads + threadIdx.x;
        const int i = u / kUnitsPerRow, c = u % kUnitsPerRow * 32;
        const unsigned w[4] = {v[it].x, v[it].y, v[it].z, v[it].w};
        unsigned o[8];
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const unsigned even = w[q] & 0x0F0F0F0Fu, odd = (w[q] >> 4) & 0x0F0F0F0Fu;
            o[2 * q] = even | (even & 0x08080808u) * 0x1Eu;
            o[2 * q + 1] = odd | (odd & 0x08080808u) * 0x1Eu;
        }
        uint4* dst = reinterpret_cast<uint4*>(act + i * kStride + c);
        dst[0] = make_uint4(o[0], o[1], o[2], o[3]);
        dst[1] = make_uint4(o[4], o[5], o[6], o[7]);
    }
}

// U steps of one lane's two weight rows, in registers: the 16 bytes of row a and row b
// per step and, for DGQ, the group's S2 | D << 16 with D = (-z·S2) mod 256.
template <StreamFormat F, int U>
struct Batch {
    uint4 qa[U], qb[U];
    uint4 qa1[is_w2(F) ? U : 1], qb1[is_w2(F) ? U : 1];  // W2: plane 1 (qa / qb: plane 0)
    unsigned ga[U], gb[U];

    // Steps s .. s + U - 1 of the stage whose weights start at byte k_byte0 of rows
    // wa / wb (index ra / rb); bytes past `bytes` read as 0.
    __device__ __forceinline__ void load(const Params& p, const uint8_t* wa, const uint8_t* wb, int ra, int rb,
                                         int k_elem0, int s, int bytes, int t) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int off = (s + u) * kStepBytes + t * 16;
            if constexpr (is_w2(F)) {
                // wa / wb: plane 0 of the lane's two channels; plane 1 follows at ldw_bytes.
                if (off < bytes) {
                    qa[u] = load_stream(wa + off);
                    qa1[u] = load_stream(wa + p.ldw_bytes + off);
                    qb[u] = load_stream(wb + off);
                    qb1[u] = load_stream(wb + p.ldw_bytes + off);
                } else {
                    qa[u] = qb[u] = qa1[u] = qb1[u] = make_uint4(0u, 0u, 0u, 0u);
                }
            } else if (off < bytes) {
                qa[u] = load_stream(wa + off);
                qb[u] = load_stream(wb + off);
            } else {
                qa[u] = qb[u] = make_uint4(0u, 0u, 0u, 0u);
            }
            if constexpr (F == StreamFormat::Dgq) {
                // The lane's 32 codes lie in one group (group % 32 == 0, offset % 32 == 0).
                const int gi = min(k_elem0 + 2 * off, p.k - 1) / p.group;
                const int64_t ia = static_cast<int64_t>(ra) * p.groups + gi;
                const int64_t ib = static_cast<int64_t>(rb) * p.groups + gi;
                ga[u] = group_word(p, ia);
                gb[u] = group_word(p, ib);
            }
        }
    }

    // W2: sums += this batch x the staged activations. Per step, the lane's 128 K values: 4 plane
    // words per plane and channel, each 32 K values = 8 code words = 4 MMAs; activations at 128·w4
    // of the lane's step. Code word s of a 32-value group (codes of K values 8i + 2s, 8i + 2s + 1):
    //   W2Codes::Masked (unsigned codes): the code pairs' word masked in place, w & (0x03030303 <<
    //     2s) = 4^s·code in every byte (one instruction, not a shift and a mask), run as u8
    //     operands into sums[s] = 4^s·S_s, which the kernel folds after the K loop; exact while
    //     |sums[3]| < 2^31 (kW2ScaledMaxK).
    //   W2Codes::Unsigned / Signed: (w >> 2s) & 0x03030303 (code_bytes), into sums[0].
    // The signedness is a template argument: one branch per batch, not one per code word.
    template <W2Codes CODES, int NT>
    __device__ __forceinline__ void compute_w2(const unsigned char* act_lane, int s, int steps,
                                               int (&sums)[CODES == W2Codes::Masked ? 4 : 1][NT][4]) const {
        constexpr int kStride = kActStride<F>;
        constexpr bool kU8 = F == StreamFormat::W2xU8;
#pragma unroll
        for (int u = 0; u < U; ++u) {
            if (s + u >= steps) break;
            const unsigned char* x = act_lane + (s + u) * kStepBytes * Fmt<F>::kElemsPerByte;
            const unsigned a0w[4] = {qa[u].x, qa[u].y, qa[u].z, qa[u].w};
            const unsigned a1w[4] = {qa1[u].x, qa1[u].y, qa1[u].z, qa1[u].w};
            const unsigned b0w[4] = {qb[u].x, qb[u].y, qb[u].z, qb[u].w};
            const unsigned b1w[4] = {qb1[u].x, qb1[u].y, qb1[u].z, qb1[u].w};
#pragma unroll
            for (int w4 = 0; w4 < 4; ++w4) {
                unsigned ea, oa, eb, ob;
                interleave_planes(a0w[w4], a1w[w4], ea, oa);
                interleave_planes(b0w[w4], b1w[w4], eb, ob);
                uint4 xb[NT][2];
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) {
                    xb[nt][0] = *reinterpret_cast<const uint4*>(x + w4 * 128 + nt * 8 * kStride);
                    xb[nt][1] = *reinterpret_cast<const uint4*>(x + w4 * 128 + nt * 8 * kStride + 16);
                }
#pragma unroll
                for (int s2 = 0; s2 < 4; ++s2) {
#pragma unroll
                    for (int nt = 0; nt < NT; ++nt) {
                        const uint4& v = xb[nt][s2 / 2];
                        const unsigned x0 = s2 % 2 == 0 ? v.x : v.z, x1 = s2 % 2 == 0 ? v.y : v.w;
                        if constexpr (CODES == W2Codes::Masked) {
                            const unsigned mask = 0x03030303u << (2 * s2);
                            mma_i8<true, kU8>(sums[s2][nt], ea & mask, eb & mask, oa & mask, ob & mask, x0, x1);
                        } else {
                            constexpr bool kSigned = CODES == W2Codes::Signed;
                            mma_i8<false, kU8>(sums[0][nt], code_bytes<kSigned>(ea, s2), code_bytes<kSigned>(eb, s2),
                                        code_bytes<kSigned>(oa, s2), code_bytes<kSigned>(ob, s2), x0, x1);
                        }
                    }
                }
            }
        }
    }

    // acc += this batch x the staged activations (steps s .. of the stage, those < steps).
    template <int NT>
    __device__ __forceinline__ void compute(const Params& p, const unsigned char* act_lane, int s, int steps,
                                            const int (*step_sums)[kStageSteps128], int t, int (&acc)[NT][4]) const {
        if constexpr (is_w2(F)) {
            auto& sums = reinterpret_cast<int(&)[1][NT][4]>(acc);
            if (p.bp.w_signed)
                compute_w2<W2Codes::Signed>(act_lane, s, steps, sums);
            else
                compute_w2<W2Codes::Unsigned>(act_lane, s, steps, sums);
            return;
        }
        constexpr int kEpb = Fmt<F>::kElemsPerByte;
        constexpr int kStride = kActStride<F>;
#pragma unroll
        for (int u = 0; u < U; ++u) {
            if (s + u >= steps) break;
            const unsigned char* x = act_lane + (s + u) * kStepBytes * kEpb;
            if constexpr (F == StreamFormat::S8) {
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) {
                    const uint4 b = *reinterpret_cast<const uint4*>(x + nt * 8 * kStride);
                    mma_i8(acc[nt], qa[u].x, qb[u].x, qa[u].y, qb[u].y, b.x, b.y);
                    mma_i8(acc[nt], qa[u].z, qb[u].z, qa[u].w, qb[u].w, b.z, b.w);
                }
            } else {
                const unsigned wa4[4] = {qa[u].x, qa[u].y, qa[u].z, qa[u].w};
                const unsigned wb4[4] = {qb[u].x, qb[u].y, qb[u].z, qb[u].w};
                uint4 b[NT][2];
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) {
                    b[nt][0] = *reinterpret_cast<const uint4*>(x + nt * 8 * kStride);
                    b[nt][1] = *reinterpret_cast<const uint4*>(x + nt * 8 * kStride + 16);
                }
                if constexpr (F == StreamFormat::Dgq) {
                    // Folded path: when no weight of the warp's 16 groups of this step can wrap, the
                    // MMAs take the raw codes u (0..15, exact in s8) and the group's S2 and z are
                    // applied once per step to the int32 sums: acc += S2·sum(a·u) - S2·z·sum(a).
                    if (p.dgq_fold && __all_sync(0xffffffffu, group_never_wraps(ga[u]) && group_never_wraps(gb[u]))) {
                        if (p.dgq_direct) {
                            // Signed codes (z = 8): (u - 8)·S2 = q·S2 with q the nibble as a signed
                            // 4-bit value, so the MMAs take S4's ×16 operands (16·q) and the step
                            // adds S2·(sum(a·16q) >> 4): no zero-point term, no flip.
                            int part[NT][4] = {};
#pragma unroll
                            for (int j = 0; j < 4; ++j) {
                                const unsigned ea = (wa4[j] << 4) & 0xF0F0F0F0u, oa = wa4[j] & 0xF0F0F0F0u;
                                const unsigned eb = (wb4[j] << 4) & 0xF0F0F0F0u, ob = wb4[j] & 0xF0F0F0F0u;
#pragma unroll
                                for (int nt = 0; nt < NT; ++nt) {
                                    const uint4& lo = b[nt][j / 2];
                                    mma_i8(part[nt], ea, eb, oa, ob, j % 2 == 0 ? lo.x : lo.z, j % 2 == 0 ? lo.y : lo.w);
                                }
                            }
                            const unsigned s_a = ga[u] & 0xFFu, s_b = gb[u] & 0xFFu;
#pragma unroll
                            for (int nt = 0; nt < NT; ++nt) {
                                acc[nt][0] = static_cast<int>(static_cast<unsigned>(acc[nt][0]) + s_a * (part[nt][0] >> 4));
                                acc[nt][1] = static_cast<int>(static_cast<unsigned>(acc[nt][1]) + s_a * (part[nt][1] >> 4));
                                acc[nt][2] = static_cast<int>(static_cast<unsigned>(acc[nt][2]) + s_b * (part[nt][2] >> 4));
                                acc[nt][3] = static_cast<int>(static_cast<unsigned>(acc[nt][3]) + s_b * (part[nt][3] >> 4));
                            }
                            continue;
                        }
                        const unsigned flip = p.z != nullptr ? 0u : 0x88888888u;
                        int part[NT][4] = {};
#pragma unroll
                        for (int j = 0; j < 4; ++j) {
                            const unsigned ua = wa4[j] ^ flip, ub = wb4[j] ^ flip;
                            const unsigned ea = ua & 0x0F0F0F0Fu, oa = (ua >> 4) & 0x0F0F0F0Fu;
                            const unsigned eb = ub & 0x0F0F0F0Fu, ob = (ub >> 4) & 0x0F0F0F0Fu;
#pragma unroll
                            for (int nt = 0; nt < NT; ++nt) {
                                const uint4& lo = b[nt][j / 2];
                                mma_i8(part[nt], ea, eb, oa, ob, j % 2 == 0 ? lo.x : lo.z, j % 2 == 0 ? lo.y : lo.w);
                            }
                        }
                        // Wrapping int32 arithmetic (unsigned): the same residue mod 2^32 as the exact sum.
                        const unsigned s_a = ga[u] & 0xFFu, s_b = gb[u] & 0xFFu;
                        const unsigned sz_a = s_a * static_cast<unsigned>(static_cast<int8_t>((ga[u] >> 8) & 0xFFu));
                        const unsigned sz_b = s_b * static_cast<unsigned>(static_cast<int8_t>((gb[u] >> 8) & 0xFFu));
#pragma unroll
                        for (int nt = 0; nt < NT; ++nt) {
                            const unsigned a0 = step_sums[nt * 8 + 2 * t][s + u], a1 = step_sums[nt * 8 + 2 * t + 1][s + u];
                            acc[nt][0] = static_cast<int>(static_cast<unsigned>(acc[nt][0]) + s_a * part[nt][0] - sz_a * a0);
                            acc[nt][1] = static_cast<int>(static_cast<unsigned>(acc[nt][1]) + s_a * part[nt][1] - sz_a * a1);
                            acc[nt][2] = static_cast<int>(static_cast<unsigned>(acc[nt][2]) + s_b * part[nt][2] - sz_b * a0);
                            acc[nt][3] = static_cast<int>(static_cast<unsigned>(acc[nt][3]) + s_b * part[nt][3] - sz_b * a1);
                        }
                        continue;
                    }
                }
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    unsigned ea, oa, eb, ob;
                    if constexpr (F == StreamFormat::S4) {
                        ea = (wa4[j] << 4) & 0xF0F0F0F0u;  // 16·q of codes 0, 2, 4, 6
                        oa = wa4[j] & 0xF0F0F0F0u;         // 16·q of codes 1, 3, 5, 7
                        eb = (wb4[j] << 4) & 0xF0F0F0F0u;
                        ob = wb4[j] & 0xF0F0F0F0u;
                    } else {
                        // Signed codes: u = q + 8 is the nibble with its top bit flipped.
                        const unsigned flip = p.z != nullptr ? 0u : 0x88888888u;
                        expand_dgq(wa4[j] ^ flip, ga[u] & 0xFFu, (ga[u] >> 16) * 0x00010001u, ea, oa);
                        expand_dgq(wb4[j] ^ flip, gb[u] & 0xFFu, (gb[u] >> 16) * 0x00010001u, eb, ob);
                    }
#pragma unroll
                    for (int nt = 0; nt < NT; ++nt) {
                        const uint4& lo = b[nt][j / 2];
                        const unsigned b0 = j % 2 == 0 ? lo.x : lo.z, b1 = j % 2 == 0 ? lo.y : lo.w;
                        mma_i8(acc[nt], ea, eb, oa, ob, b0, b1);
                    }
                }
            }
        }
    }
};

// Output (token, row) from its int32 sum: the GEMM epilogue (S4: undo the ×16 first), or for
// W2 the bit-plane GEMM's (zero-point terms in 64 bits; the sum is the exact product of the
// codes, |S| <= K·3·255 < 2^31 by stream_refusal).
template <StreamFormat F>
__device__ __forceinline__ void emit(const Params& p, int token, int row, int v) {
    if constexpr (is_w2(F))
        store_out_any(p.bp, token, row, static_cast<int64_t>(v));
    else
        p.ep.store(token, row, F == StreamFormat::S4 ? v >> 4 : v);
}

// The four outputs of a lane's accumulator tile: v[c] is (token + (c & 1), row + (c < 2 ? 0 : 8)),
// each written when inside M x N. The scales, bias and zero-point terms of the two tokens and two
// rows are all requested before the first output is computed: one round trip to L2 instead of
// one per output (emit() per output compiled to four load-wait-store chains, each store keeping
// the next output's loads behind it). Same arithmetic and bits as emit().
template <StreamFormat F>
__device__ __forceinline__ void emit_tile(const Params& p, int token, int row, const int (&v)[4]) {
    const bool tok[2] = {token < p.m, token + 1 < p.m};
    const bool rows[2] = {row < p.n, row + 8 < p.n};
    if constexpr (is_w2(F)) {
        BitplaneTokenTerms x[2];
        BitplaneChannelTerms w[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            if (tok[h]) x[h] = load_token_terms(p.bp, token + h);
            if (rows[h]) w[h] = load_channel_terms(p.bp, row + 8 * h);
        }
#pragma unroll
        for (int c = 0; c < 4; ++c)
            if (tok[c & 1] && rows[c >> 1])
                store_out_any(p.bp, token + (c & 1), row + 8 * (c >> 1), static_cast<int64_t>(v[c]), x[c & 1], w[c >> 1]);
    } else {
        float sa[2] = {};
        Epilogue::Column col[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            if (tok[h]) sa[h] = p.ep.row_scale(token + h);
            if (rows[h]) col[h] = p.ep.column(row + 8 * h);
        }
#pragma unroll
        for (int c = 0; c < 4; ++c)
            if (tok[c & 1] && rows[c >> 1])
                p.ep.store(token + (c & 1), row + 8 * (c >> 1), F == StreamFormat::S4 ? v[c] >> 4 : v[c], sa[c & 1],
                           col[c >> 1]);
    }
}

// Split-K reduction inside a thread block cluster (sm_90; the K splits of one channel tile are one
// cluster along grid.y): every block puts its 128 x kTokens int32 partial sums into its own shared
// memory (the activation buffer, no longer read), a cluster barrier makes them visible (its fence
// restricted to shared memory, cluster_barrier.cuh: a cluster.sync() costs 0.3-0.5 us here), and
// block rank q sums the slice [q·E/splits, (q+1)·E/splits) of the E = 128·M live entries over
// all ranks through distributed shared memory and applies the epilogue to it. A second barrier,
// without a fence (cluster_barrier.cuh: it must not wait for the output stores), keeps every
// block's shared memory alive until its peers have read it. No global workspace, no atomics, no
// fence after the outputs: the atomic path's tail (partial sums to L2, fence, arrival counter,
// read back) is most of the fixed cost of a small layer. Same bits as every other split:
// int32 addition wraps the same in any order.
template <int kTokens, StreamFormat F, int NT>
__device__ __forceinline__ void cluster_reduce(const Params& p, unsigned char* smem, const int (&acc)[NT][4],
                                               int tile_row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    cg::cluster_group cluster = cg::this_cluster();
    int* red = reinterpret_cast<int*>(smem);
    const int t = threadIdx.x % 4;
    __syncthreads();  // every warp is done reading the staged activations
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c)
            red[(tile_row + (c < 2 ? 0 : 8)) * kTokens + nt * 8 + 2 * t + (c & 1)] = acc[nt][c];
    cluster_sync_handover();
    const int ranks = static_cast<int>(cluster.num_blocks());
    const int rank = static_cast<int>(cluster.block_rank());
    const int entries = kRowsPerBlock * p.m;
    const int begin = entries * rank / ranks;  // entries <= 128 x 16, ranks <= 8: no overflow
    const int end = entries * (rank + 1) / ranks;
    for (int e = begin + static_cast<int>(threadIdx.x); e < end; e += kThreads) {
        const int r = e / p.m, token = e % p.m;
        // Every rank's value requested before the first is added (one distributed-shared-memory
        // round trip, not one per rank as a loop over the run-time rank count compiles to).
        int part[kMaxCluster];
#pragma unroll
        for (int q = 0; q < kMaxCluster; ++q)
            part[q] = q < ranks ? *cluster.map_shared_rank(red + r * kTokens + token, q) : 0;
        unsigned sum = 0;  // wrapping int32 addition, as the atomics of the other path
#pragma unroll
        for (int q = 0; q < kMaxCluster; ++q) sum += static_cast<unsigned>(part[q]);
        const int row = static_cast<int>(blockIdx.x) * kRowsPerBlock + r;
        if (row < p.n) emit<F>(p, token, row, static_cast<int>(sum));
    }
    cluster_sync_reads_done();
#else
    (void)p, (void)smem, (void)acc, (void)tile_row;
    __trap();  // unreachable: make_plan uses clusters only on compute capability 9.0+
#endif
}

// Split-K without a cluster: after a block has written its partial sums, whether it is the last
// block of its channel tile to arrive (then the others' sums are visible to it). One arrival per
// block on the tile's counter; block-uniform (last_arrival is the block's shared flag).
// The handover is the split-K semaphore pattern: the block barrier puts every thread's stores
// before thread 0's arrival in causality order, and that arrival is one acquire-release atomic
// at GPU scope (cumulative: it releases the whole block's stores and acquires the earlier
// arrivals' ones); the second barrier passes the acquire on to the block. The last block reads
// the other slices through L2 (ld.global.cg / atomics), never from a stale L1 line. (Before: a
// __threadfence() in every thread on both sides, each a MEMBAR.GPU on the last block's path.)
__device__ __forceinline__ bool last_to_arrive(const Params& p, bool& last_arrival) {
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned before;
        asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;"
                     : "=r"(before)
                     : "l"(p.arrivals + blockIdx.x)
                     : "memory");
        last_arrival = before == static_cast<unsigned>(p.splits - 1);
    }
    __syncthreads();
    return last_arrival;
}

// Split-K across the blocks of a channel tile without a cluster: block (x, y) stores its 128 x
// kTokens int32 partial sums into slice x * splits + y of the workspace (a lane's two tokens of
// a row as one 8-byte store, skipped when both are past M; rows past N too, never read), and
// the last block of the tile to arrive adds the other slices (read through L2, ld.global.cg) to
// its own registers, applies the epilogue and resets the tile's arrival counter. The slices are
// left behind: nothing reads them before the next launch has written them again.
template <int kTokens, StreamFormat F, int NT>
__device__ __forceinline__ void slices_reduce(const Params& p, int (&acc)[NT][4], int tile_row, int t,
                                              bool& last_arrival) {
    constexpr int64_t kSlice = int64_t{kRowsPerBlock} * kTokens;
    int* base = p.partial + static_cast<int64_t>(blockIdx.x) * p.splits * kSlice;
    int* mine = base + blockIdx.y * kSlice;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {  // rows tile_row and tile_row + 8
            const int at = (tile_row + 8 * h) * kTokens + nt * 8 + 2 * t;
            if (nt * 8 + 2 * t < p.m)
                *reinterpret_cast<int2*>(mine + at) = make_int2(acc[nt][2 * h], acc[nt][2 * h + 1]);
        }
    if (!last_to_arrive(p, last_arrival)) return;
    for (int y = 0; y < p.splits; ++y) {
        if (y == static_cast<int>(blockIdx.y)) continue;
        const int* other = base + y * kSlice;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                if (nt * 8 + 2 * t >= p.m) continue;  // token pairs past M: not stored
                const int at = (tile_row + 8 * h) * kTokens + nt * 8 + 2 * t;
                const int2 v = __ldcg(reinterpret_cast<const int2*>(other + at));
                acc[nt][2 * h] += v.x;
                acc[nt][2 * h + 1] += v.y;
            }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
        emit_tile<F>(p, nt * 8 + 2 * t, static_cast<int>(blockIdx.x) * kRowsPerBlock + tile_row, acc[nt]);
    if (threadIdx.x == 0) p.arrivals[blockIdx.x] = 0;
}

// A4: the activations are packed S4 (W4A4; S4 weights only), expanded as they are staged.
template <StreamFormat F, bool A4, int NT>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) gemv_stream_kernel(const Params p) {
    static_assert(!A4 || F == StreamFormat::S4, "S4 activations pair with S4 weights");
    constexpr int kEpb = Fmt<F>::kElemsPerByte;
    __shared__ __align__(16) unsigned char act[NT * 8 * kActStride<F>];
    __shared__ int step_sums[F == StreamFormat::Dgq ? NT * 8 : 1][kStageSteps128];
    __shared__ bool last_arrival;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4;
    const int tile_row = warp * kRowsPerWarp + g;  // this lane's rows: tile_row and tile_row + 8
    const int row_a = blockIdx.x * kRowsPerBlock + tile_row, row_b = row_a + 8;
    // Rows past N read row N-1 (in bounds, results dropped): loads need no row predicate.
    const int ra = min(row_a, p.n - 1), rb = min(row_b, p.n - 1);
    const bool active = blockIdx.x * kRowsPerBlock + warp * kRowsPerWarp < p.n;  // warp-uniform
    const unsigned char* act_lane = act + g * kActStride<F> + (is_w2(F) ? t * 32 : t * 16 * kEpb);
    constexpr int kUnroll = Fmt<F>::kUnroll;
    int acc[NT][4] = {};

    // The block's split [k_begin, k_end) in stages of kStageElems: per stage the first batch of
    // weights is requested before the activations are staged, so the staging (an L2 round
    // trip) hides under the first weight loads.
    const int k_begin = blockIdx.y * p.slice, k_end = min(p.k, k_begin + p.slice);
    constexpr int kRowPlanes = is_w2(F) ? 2 : 1;  // W2: a channel's two plane rows, adjacent
    auto stage_ptr = [&](int row, int k0) { return p.w + static_cast<int64_t>(row) * kRowPlanes * p.ldw_bytes + k0 / kEpb; };
    if constexpr (is_w2(F)) {
        // W2 does about 3x the instructions per weight byte of S4 (plane interleave, 8 code words
        // per 32 K values, 4 MMAs), so a warp that waited for a batch and then computed it would
        // have no loads in flight for a long time. Two batches of 2 steps each (a stage is 4
        // steps): batch B's loads are issued before batch A is computed, and the NEXT stage's
        // batch A before batch B is computed (it stays in flight through the next staging).
        Batch<F, 2> ba, bb;
        // M <= 8 with unsigned codes: one sum per code scale (W2Codes::Masked), folded below.
        int accs[NT == 1 ? 4 : 1][NT][4] = {};
        auto compute = [&](const Batch<F, 2>& b, int s, int steps) {
            if constexpr (NT == 1) {
                if (p.w2_scaled) {
                    b.template compute_w2<W2Codes::Masked>(act_lane, s, steps, accs);
                    return;
                }
            }
            b.compute(p, act_lane, s, steps, step_sums, t, acc);
        };
        if (!p.prefetch) pdl_wait();
        if (active && k_begin < k_end) ba.load(p, stage_ptr(ra, k_begin), stage_ptr(rb, k_begin), ra, rb, k_begin, 0,
                                               min(kStageElems, k_end - k_begin) / kEpb, t);
        if (p.prefetch) pdl_wait();
        pdl_trigger();
        for (int k0 = k_begin; k0 < k_end; k0 += kStageElems) {
            const int kcount = min(kStageElems, k_end - k0);
            const int bytes = kcount / kEpb;
            const int steps = (bytes + kStepBytes - 1) / kStepBytes;
            if (k0 != k_begin) __syncthreads();
            stage_plane_activations<NT>(p, k0, kcount, act);
            __syncthreads();
            if (!active) continue;
            if (steps > 2) bb.load(p, stage_ptr(ra, k0), stage_ptr(rb, k0), ra, rb, k0, 2, bytes, t);
            compute(ba, 0, steps);
            const int k1 = k0 + kStageElems;
            if (k1 < k_end)
                ba.load(p, stage_ptr(ra, k1), stage_ptr(rb, k1), ra, rb, k1, 0, min(kStageElems, k_end - k1) / kEpb, t);
            if (steps > 2) compute(bb, 2, steps);
        }
        if constexpr (NT == 1) {
            // accs[s] = 4^s·S_s exactly (kW2ScaledMaxK): the shifts are exact; the sum wraps as int32 does.
#pragma unroll
            for (int c = 0; c < 4; ++c)
                acc[0][c] = static_cast<int>(static_cast<unsigned>(acc[0][c]) + static_cast<unsigned>(accs[0][0][c]) +
                                             static_cast<unsigned>(accs[1][0][c] >> 2) +
                                             static_cast<unsigned>(accs[2][0][c] >> 4) +
                                             static_cast<unsigned>(accs[3][0][c] >> 6));
        }
    } else {
        if (k_begin >= k_end) pdl_wait();  // no stage (the loop below waits in its first one)
        for (int k0 = k_begin; k0 < k_end; k0 += kStageElems) {
            const int kcount = min(kStageElems, k_end - k0);
            const int bytes = kcount / kEpb;  // a multiple of 16
            const int steps = (bytes + kStepBytes - 1) / kStepBytes;
            const uint8_t* wa = stage_ptr(ra, k0);
            const uint8_t* wb = stage_ptr(rb, k0);
            Batch<F, kUnroll> batch;
            if (k0 == k_begin && !p.prefetch) pdl_wait();
            if (active) batch.load(p, wa, wb, ra, rb, k0, 0, bytes, t);
            if (k0 == k_begin && p.prefetch) pdl_wait();
            if (k0 == k_begin) pdl_trigger();
            if (k0 != k_begin) __syncthreads();  // every warp is done with the previous stage
            if constexpr (A4)
                stage_s4_activations<NT>(p, k0, kcount, act);
            else
                stage_activations<F, NT>(p, k0, kcount, act, step_sums);
            __syncthreads();
            if (!active) continue;
            for (int s = 0; s < steps; s += kUnroll) {
                if (s != 0) batch.load(p, wa, wb, ra, rb, k0, s, bytes, t);
                batch.compute(p, act_lane, s, steps, step_sums, t, acc);
            }
        }
    }

    // Accumulator c of tile nt: channel tile_row (+8 for c >= 2), token 8·nt + 2t (+1 for odd c).
    constexpr int kTokens = NT * 8;
    if (p.splits == 1) {
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) emit_tile<F>(p, nt * 8 + 2 * t, row_a, acc[nt]);
        return;
    }
    if (p.cluster) {
        cluster_reduce<kTokens, F>(p, act, acc, tile_row);
        return;
    }
    if (p.slices) {
        slices_reduce<kTokens, F>(p, acc, tile_row, t, last_arrival);
        return;
    }
    int* part = p.partial + static_cast<int64_t>(blockIdx.x) * kRowsPerBlock * kTokens;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int token = nt * 8 + 2 * t + (c & 1), r = tile_row + (c < 2 ? 0 : 8);
            if (token < p.m && blockIdx.x * kRowsPerBlock + r < p.n) atomicAdd(part + r * kTokens + token, acc[nt][c]);
        }
    if (!last_to_arrive(p, last_arrival)) return;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int token = nt * 8 + 2 * t + (c & 1), r = tile_row + (c < 2 ? 0 : 8);
            const int row = blockIdx.x * kRowsPerBlock + r;
            if (token < p.m && row < p.n) emit<F>(p, token, row, atomicExch(part + r * kTokens + token, 0));
        }
    if (threadIdx.x == 0) p.arrivals[blockIdx.x] = 0;
}

// The split-K workspace starts with kCounterSlots arrival counters, one per channel tile, the
// partial sums after them. The counters' place is the same for every request, so no request's
// partial sums (the slices leave theirs behind) ever land on another's counters; each launch
// leaves its counters zero, and the workspace is zeroed when it grows.
constexpr int64_t kCounterSlots = 4096;
constexpr size_t kCounterBytes = kCounterSlots * sizeof(unsigned);

// How a request is cut: channel tiles x K splits and the split length.
struct Plan {
    int64_t tiles;
    int64_t splits;
    int slice;     // K values per split, a multiple of the step
    bool cluster;  // the splits of a tile form a thread block cluster (cluster_reduce)
    size_t workspace;
};

template <StreamFormat F, bool A4, int NT>
cudaLaunchConfig_t launch_config(int64_t tiles, int64_t splits, bool cluster, cudaStream_t stream,
                                 cudaLaunchAttribute* attr) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(splits));
    cfg.blockDim = dim3(kThreads);
    cfg.stream = stream;
    if (cluster) {
        attr->id = cudaLaunchAttributeClusterDimension;
        attr->val.clusterDim.x = 1;
        attr->val.clusterDim.y = static_cast<unsigned>(splits);
        attr->val.clusterDim.z = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
    }
    return cfg;
}

// Blocks of gemv_stream_kernel<F, A4, NT> one SM holds at once (registers decide: 2 on sm_80/90 for
// S8 activations; the W4A4 kernels stage with fewer registers and may fit 3), and for cluster
// sizes 2..kMaxCluster the clusters the device holds at once (0 where the query fails).
struct Residency {
    int blocks_per_sm = 1;
    int clusters[kMaxCluster + 1] = {};
};

template <StreamFormat F, bool A4, int NT>
const Residency& residency(int cc_major) {
    static const Residency r = [cc_major] {
        Residency out;
        int b = 0;
        LOWBIT_CUDA_CHECK(
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, gemv_stream_kernel<F, A4, NT>, kThreads, 0));
        out.blocks_per_sm = std::max(b, 1);
        if (cc_major >= 9) {
            for (int c = 2; c <= kMaxCluster; ++c) {
                cudaLaunchAttribute attr{};
                cudaLaunchConfig_t cfg = launch_config<F, A4, NT>(c, c, true, nullptr, &attr);
                int n = 0;
                if (cudaOccupancyMaxActiveClusters(&n, gemv_stream_kernel<F, A4, NT>, &cfg) != cudaSuccess) {
                    (void)cudaGetLastError();  // a refused query only means: no clusters
                    n = 0;
                }
                out.clusters[c] = n;
            }
        }
        return out;
    }();
    return r;
}

const Residency& residency(StreamFormat f, bool a_s4, bool one_tile, int cc_major) {
    if (a_s4)  // stream_refusal: S4 weights
        return one_tile ? residency<StreamFormat::S4, true, 1>(cc_major) : residency<StreamFormat::S4, true, 2>(cc_major);
    switch (f) {
        case StreamFormat::S8:
            return one_tile ? residency<StreamFormat::S8, false, 1>(cc_major) : residency<StreamFormat::S8, false, 2>(cc_major);
        case StreamFormat::S4:
            return one_tile ? residency<StreamFormat::S4, false, 1>(cc_major) : residency<StreamFormat::S4, false, 2>(cc_major);
        case StreamFormat::W2:
            return one_tile ? residency<StreamFormat::W2, false, 1>(cc_major) : residency<StreamFormat::W2, false, 2>(cc_major);
        case StreamFormat::W2xU8:
            return one_tile ? residency<StreamFormat::W2xU8, false, 1>(cc_major) : residency<StreamFormat::W2xU8, false, 2>(cc_major);
        default:
            return one_tile ? residency<StreamFormat::Dgq, false, 1>(cc_major) : residency<StreamFormat::Dgq, false, 2>(cc_major);
    }
}

// W2: the K values the kernel streams, a multiple of 128: the words of K (rounded up to a word
// pair) that both plane operands hold; every bit past K is zero in both (lowbit.h).
int64_t plane_k(const StreamProblem& p) {
    const BitplaneGemmArgs& g = *p.planes;
    const int64_t words = std::min({g.ldx, g.ldw, (g.k + 127) / 128 * 2});
    return words * 64;
}

// How split-K partial sums meet, LOWBIT_STREAM_REDUCE (read once): unset or "auto": a thread
// block cluster where the plan allows one, per-block slices otherwise; "atomic": clusters where
// allowed, atomic adds into one sum otherwise (the reduction before the slices, for comparisons);
// "slices": never a cluster.
enum class Reduce { Auto, Atomic, Slices };
Reduce reduce_mode() {
    static const Reduce mode = [] {
        const char* v = std::getenv("LOWBIT_STREAM_REDUCE");
        if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return Reduce::Auto;
        if (std::strcmp(v, "atomic") == 0) return Reduce::Atomic;
        if (std::strcmp(v, "slices") == 0) return Reduce::Slices;
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                    std::string("LOWBIT_STREAM_REDUCE=") + v + " is not one of auto, atomic, slices");
    }();
    return mode;
}

bool clusters_allowed() { return reduce_mode() != Reduce::Slices; }

// LOWBIT_DGQ_FOLD=zero-point keeps the folded DGQ path's unsigned-code form (acc += S2·sum(a·u)
// - S2·8·sum(a)) for signed codes too, for comparisons; read once.
bool dgq_direct_allowed() {
    static const bool allowed = [] {
        const char* v = std::getenv("LOWBIT_DGQ_FOLD");
        if (v == nullptr || *v == '\0' || std::strcmp(v, "direct") == 0) return true;
        if (std::strcmp(v, "zero-point") == 0) return false;
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                    std::string("LOWBIT_DGQ_FOLD=") + v + " is not one of direct, zero-point");
    }();
    return allowed;
}

// W2 at M <= 8 with unsigned codes masks its code words in place (W2Codes::Masked) unless
// LOWBIT_W2_CODES=shifted (the shift-and-mask words, for comparisons); read once.
bool w2_scaled_allowed() {
    static const bool allowed = [] {
        const char* v = std::getenv("LOWBIT_W2_CODES");
        if (v == nullptr || *v == '\0' || std::strcmp(v, "scaled") == 0) return true;
        if (std::strcmp(v, "shifted") == 0) return false;
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                    std::string("LOWBIT_W2_CODES=") + v + " is not one of scaled, shifted");
    }();
    return allowed;
}

// The grid is at most one wave: K is split only as far as the channel tiles leave resident
// block slots empty (N = 4096: 32 tiles x 8 splits on 132 SMs x 2 blocks). Every block reads
// the same number of bytes, so a second, partial wave would leave SMs idle at the end, and
// every extra block pays the staging and reduction latencies again.
// On sm_90 the splits of a tile form one cluster when they are at most kMaxCluster and every
// tile's cluster is resident at once, giving up at most 1/8 of the splits for that; otherwise
// (few channel tiles and long K, or clusters the GPCs cannot all hold) the slices reduction.
// Measured on the H100 (DecodeBench, same runs): 32 tiles do not fit as 32 clusters of 8, and
// 7 splits in clusters beat 8 with atomics by 3-17% at M >= 4 (tie at M = 1); 64 tiles do not
// fit as clusters of 4, and 3 splits in clusters lost 3-16% to 4 with atomics.
Plan make_plan(const StreamProblem& p, int sm_count, int cc_major) {
    const bool w2 = is_w2(p.format);
    const int64_t step = kStepBytes * (p.format == StreamFormat::S8 ? 1 : w2 ? 8 : 2);
    const int64_t k = w2 ? plane_k(p) : p.k;
    const int64_t k_steps = (k + step - 1) / step;
    const Residency& res = residency(p.format, p.a_s4, p.m <= 8, cc_major);
    Plan plan{};
    plan.tiles = (p.n + kRowsPerBlock - 1) / kRowsPerBlock;
    const int64_t capacity = int64_t{res.blocks_per_sm} * sm_count;
    const int64_t max_splits = std::max<int64_t>(1, k_steps / (w2 ? kMinSliceStepsW2 : kMinSliceSteps));
    int64_t splits = std::min(std::max<int64_t>(1, capacity / plan.tiles), max_splits);
    if (plan.tiles > kCounterSlots) splits = 1;  // (splits > 1 means tiles <= capacity / 2: never so many)
    if (cc_major >= 9 && splits > 1 && splits <= kMaxCluster && clusters_allowed()) {
        // At most 1/8 of the blocks given up so that every cluster fits (8 -> 7 splits, never 4 -> 3).
        for (int64_t c = splits; c >= 2 && 8 * c >= 7 * splits; --c) {
            if (res.clusters[c] >= plan.tiles) {
                plan.cluster = true;
                splits = c;
                break;
            }
        }
    }
    const int64_t slice_steps = (k_steps + splits - 1) / splits;
    plan.splits = (k_steps + slice_steps - 1) / slice_steps;  // no empty split
    if (plan.splits == 1) plan.cluster = false;
    plan.slice = static_cast<int>(slice_steps * step);
    const int64_t tokens = p.m <= 8 ? 8 : 16;
    plan.workspace = plan.splits == 1 || plan.cluster
                         ? 0
                         : kCounterBytes +
                               static_cast<size_t>(plan.tiles * plan.splits) * kRowsPerBlock * tokens * sizeof(int);
    return plan;
}

// LOWBIT_STREAM_PLAN_LOG=1 prints each new plan to stderr (once per distinct request shape).
void log_plan(const StreamProblem& p, const Plan& plan, int cc_major) {
    static const bool enabled = [] {
        const char* v = std::getenv("LOWBIT_STREAM_PLAN_LOG");
        return v != nullptr && std::strcmp(v, "1") == 0;
    }();
    if (!enabled) return;
    static std::mutex mutex;
    static int64_t last[4] = {-1, -1, -1, -1};
    std::lock_guard<std::mutex> lock(mutex);
    const int64_t key[4] = {p.m, p.n, p.k, static_cast<int64_t>(p.format) * 2 + (p.a_s4 ? 1 : 0)};
    if (std::equal(key, key + 4, last)) return;
    std::copy(key, key + 4, last);
    const Residency& res = residency(p.format, p.a_s4, p.m <= 8, cc_major);
    std::fprintf(stderr, "gemv_stream plan: M=%lld N=%lld K=%lld format=%d: %lld tiles x %lld splits, %s;"
                 " blocks/SM %d, resident clusters of 2..8:", static_cast<long long>(p.m), static_cast<long long>(p.n),
                 static_cast<long long>(p.k), static_cast<int>(p.format), static_cast<long long>(plan.tiles),
                 static_cast<long long>(plan.splits), plan.cluster ? "cluster" : (plan.splits > 1 ? "atomic" : "no split"),
                 res.blocks_per_sm);
    for (int c = 2; c <= kMaxCluster; ++c) std::fprintf(stderr, " %d", res.clusters[c]);
    std::fprintf(stderr, "\n");
}

template <StreamFormat F, bool A4, int NT>
void launch(const Plan& plan, const Params& params, cudaStream_t stream, bool pdl) {
    cudaLaunchAttribute attrs[2]{};
    cudaLaunchConfig_t cfg = launch_config<F, A4, NT>(plan.tiles, plan.splits, plan.cluster, stream, &attrs[0]);
    if (pdl) add_pdl_attribute(cfg, attrs);
    LOWBIT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, gemv_stream_kernel<F, A4, NT>, params));
}

}  // namespace

const char* stream_refusal(const StreamProblem& p, int cc_major) {
    if (cc_major < 8) return "the streaming kernels need compute capability 8.0 or newer (mma.m16n8k32 on s8)";
    if (p.m < 1 || p.m > kStreamMaxM) return "M is above the streaming kernels' limit";
    if (is_w2(p.format)) {
        if (p.planes == nullptr) return "no bit-plane request";
        const BitplaneGemmArgs& g = *p.planes;
        if (g.w_bits != 2) return "the weights are not 2 bit planes";
        if (g.x_bits < 1 || g.x_bits > 8) return "the activations are not 1..8 bit planes";
        if ((p.format == StreamFormat::W2xU8) != (g.x_bits == 8 && !g.x_signed))
            return "W2xU8 is the format of unsigned 8-bit activations (and only of them)";
        if (g.n >= (int64_t{1} << 31) || g.k >= (int64_t{1} << 21)) return "N is 2^31 or more, or K 2^21 or more";
        if (reinterpret_cast<uintptr_t>(g.w) % 16 != 0 || g.ldw % 2 != 0) return "the weight planes are not 16-byte aligned";
        if (g.ldx % 2 != 0) return "the activation planes' leading dimension is odd";
        return "";
    }
    if (p.n >= (int64_t{1} << 31) || p.k >= (int64_t{1} << 31)) return "N or K is 2^31 or more";
    if (reinterpret_cast<uintptr_t>(p.w) % 16 != 0) return "the weights do not start 16-byte aligned";
    if (p.a_s4 && p.format != StreamFormat::S4) return "S4 activations need S4 weights";
    if (p.a_s4 && p.lda % 2 != 0) return "the S4 activations' leading dimension is odd";
    if (p.format == StreamFormat::S8) {
        if (p.k % 16 != 0) return "K is not a multiple of 16";
        if (p.ldw % 16 != 0) return "ldb is not a multiple of 16";
        return "";
    }
    if (p.k % 32 != 0) return "K is not a multiple of 32";
    if (p.ldw % 32 != 0) return "the weights' leading dimension is not a multiple of 32 nibbles";
    if (p.format == StreamFormat::S4 && !p.a_s4 && p.k >= 131072)
        return "K is 131072 or more (the S4 kernel accumulates 16·acc)";
    if (p.a_s4 && p.k >= (int64_t{1} << 21)) return "K is 2^21 or more (the W4A4 kernel accumulates 16·acc)";
    if (p.format == StreamFormat::Dgq && p.group % 32 != 0) return "the DGQ group size is not a multiple of 32";
    return "";
}

size_t stream_workspace_bytes(const StreamProblem& p, int sm_count, int cc_major) {
    return make_plan(p, sm_count, cc_major).workspace;
}

void launch_gemv_stream(const StreamProblem& p, void* workspace, const LaunchEnv& env, int cc_major) {
    const Plan plan = make_plan(p, env.sm_count, cc_major);
    log_plan(p, plan, cc_major);
    Params params{};
    params.m = static_cast<int>(p.m);
    params.n = static_cast<int>(p.n);
    params.slice = plan.slice;
    params.splits = static_cast<int>(plan.splits);
    params.cluster = plan.cluster;
    if (plan.splits > 1 && !plan.cluster) {
        params.slices = reduce_mode() != Reduce::Atomic;
        params.arrivals = static_cast<unsigned*>(workspace);
        params.partial = reinterpret_cast<int*>(static_cast<char*>(workspace) + kCounterBytes);
    }
    params.group = 1;
    if (is_w2(p.format)) {
        const BitplaneGemmArgs& g = *p.planes;
        params.bp = g;
        params.w = reinterpret_cast<const uint8_t*>(g.w);
        params.ldw_bytes = g.ldw * 8;  // bytes per plane row
        params.k = static_cast<int>(plane_k(p));
    } else {
        params.a = p.a;
        params.lda = p.lda;
        params.w = p.w;
        params.ldw_bytes = p.format == StreamFormat::S8 ? p.ldw : p.ldw / 2;
        params.s2 = p.group_scales;
        params.z = p.zero_points;
        if (p.format == StreamFormat::Dgq) params.group = static_cast<int>(p.group);
        params.groups = p.format == StreamFormat::Dgq ? static_cast<int>(p.k / p.group) : 0;
        params.dgq_fold = p.format == StreamFormat::Dgq && p.group % 128 == 0;
        params.dgq_direct = params.dgq_fold && p.zero_points == nullptr && dgq_direct_allowed();
        params.k = static_cast<int>(p.k);
        params.a_aligned16 = (p.a_s4 ? p.lda / 2 : p.lda) % 16 == 0 && reinterpret_cast<uintptr_t>(p.a) % 16 == 0;
        params.ep = p.ep;
    }
    const bool pdl = pdl_launch_allowed(cc_major);
    params.prefetch = pdl && p.weights_early && pdl_mode() == PdlMode::Prefetch;
    params.w2_scaled = is_w2(p.format) && p.m <= 8 && !p.planes->w_signed && params.k <= kW2ScaledMaxK &&
                       w2_scaled_allowed();
    const bool one_tile = p.m <= 8;  // tokens in one MMA column tile
    switch (p.format) {
        case StreamFormat::S8:
            one_tile ? launch<StreamFormat::S8, false, 1>(plan, params, env.stream, pdl)
                     : launch<StreamFormat::S8, false, 2>(plan, params, env.stream, pdl);
            break;
        case StreamFormat::S4:
            if (p.a_s4)
                one_tile ? launch<StreamFormat::S4, true, 1>(plan, params, env.stream, pdl)
                         : launch<StreamFormat::S4, true, 2>(plan, params, env.stream, pdl);
            else
                one_tile ? launch<StreamFormat::S4, false, 1>(plan, params, env.stream, pdl)
                         : launch<StreamFormat::S4, false, 2>(plan, params, env.stream, pdl);
            break;
        case StreamFormat::Dgq:
            one_tile ? launch<StreamFormat::Dgq, false, 1>(plan, params, env.stream, pdl)
                     : launch<StreamFormat::Dgq, false, 2>(plan, params, env.stream, pdl);
            break;
        case StreamFormat::W2:
            one_tile ? launch<StreamFormat::W2, false, 1>(plan, params, env.stream, pdl)
                     : launch<StreamFormat::W2, false, 2>(plan, params, env.stream, pdl);
            break;
        case StreamFormat::W2xU8:
            one_tile ? launch<StreamFormat::W2xU8, false, 1>(plan, params, env.stream, pdl)
                     : launch<StreamFormat::W2xU8, false, 2>(plan, params, env.stream, pdl);
            break;
    }
    LOWBIT_CUDA_CHECK_LAUNCH("gemv_stream_kernel");
}

}  // namespace cuda
}  // namespace lowbit
