// bitplane_gemm.cu -- CudaBackend::bitplane_gemm: the ABQ-LLM any-bit GEMM on
// binary tensor cores (mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc,
// sm_80 and later: every arch of LOWBIT_CUDA_ARCHS runs the same code).
//
// One binary GEMM. With the lowbit.h layout, the p planes of a token are
// adjacent rows, so the activations are a binary matrix X' of M*p rows (row
// t*p + a = plane a of token t) and the weights W' of N*q rows, both ld words
// per row; C' = X' W'^T holds one popcount (an exact int32 <= K) per plane pair.
// Two kernels compute C', by M*p:
//
// Decode (M*p <= 64: W2A8 / W4A8 up to M = 8, W4A4 up to M = 16), weight
// streaming. Every weight bit is used by at most 64 activation planes, so the
// kernel is bound by reading the weight planes once from device memory:
//   * weight plane rows go on the MMA's M = 16 side, the (at most 64)
//     activation plane rows on N = 8 (NT n8 tiles; at M = 1, 8-bit activations
//     fill exactly one n8 tile);
//   * a thread block owns C channels = C*q consecutive weight-plane rows, the
//     smallest multiple of 16 (C = 16 / (largest power of 2 dividing q): q = 2
//     -> 8 channels, one m16 tile; q = 3 -> 16 channels, three tiles), so the
//     whole p x q combination of its outputs stays in the block: T tiles x S
//     warps along K (T*S <= 8 warps), the split-K partials summed exactly in
//     int32 through shared memory;
//   * a warp reads 16 weight-plane rows x 512 bits of K per step, each thread
//     one 16-byte piece of row gid and one of row gid + 8, through its own
//     4-slot cp.async ring in shared memory (3 steps = 3 KB in flight per warp,
//     L1 bypassed: the weights are read once), and the same K bits of its
//     activation rows with __ldg (every warp of every block reads them: L1
//     serves). The m16n8k256 fragments only need A and B to put the same bits
//     of K in the same place, so thread (gid, tig)'s piece (bits 128*tig ..
//     +127 of the step) feeds two MMAs: 32-bit words 0,1 as k-words (tig,
//     4 + tig) of the first, words 2,3 of the second. A thread reads back only
//     the pieces it copied itself: the ring needs no block barrier;
//   * grid: one block per C channels (N = 4096, q = 2: 512 blocks; all four
//     LLaMA shapes give >= 256 blocks of <= 8 warps for 132 SMs).
//
// Prefill (M*p > 64): tiles of BM = 64 activation rows x BN = 128 weight rows
// (2 x 2 warps of 32 x 64); a thread block owns TM = BM / p whole tokens and
// TN = BN / q whole channels (rows past TM*p / TN*q are zero-filled and
// wasted: at most p-1 of BM):
//   mainloop   STAGES-deep cp.async pipeline over K in chunks of 512 bits
//              (64 bytes per row, rows padded to 80 bytes in shared memory so
//              that the 32-bit fragment loads of a warp hit 32 distinct banks);
//              per chunk two m16n8k256 steps per warp tile. Rows and words
//              outside the operands are zero-filled by cp.async (src-size 0).
//
// Epilogue (both): the int32 popcounts C' go to shared memory; each output
// (t, j) combines its p x q partials in int64:
//     S = sum_a sum_b (+-2^(a+b)) C'[t*p+a][j*q+b]
// (negative when exactly one of the planes is a sign plane), adds the
// zero-point terms in uint64 as the CPU backend does, and applies
// ((float)acc * sx) * sw (+ bias) with __ll2float_rn, __fmul_rn, __fadd_rn:
// the CPU backend's bits. No int32 -> half conversion anywhere before the
// scales (the ABQ-LLM overflow).
//
// K: the words past K are zero padding in both operands (lowbit.h), so the
// decode kernel reads min(ldx, ldw) words of every row and the prefill kernel
// ceil(K/64) words rounded up to its chunk (each operand within its own ld);
// whatever lies outside an operand is zero-filled.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda_backend.h"
#include "bitplane_epilogue.cuh"
#include "cuda_check.h"
#include "gemv_stream.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kChunkWords = 8;  // 512 bits of K: one load step (decode) / pipeline stage (prefill)

// ---- instructions -------------------------------------------------------------

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// c += popc(A AND B) for a 16 x 256-bit A (row-major) and a 256 x 8-bit B (column-major).
// Fragments (g = lane / 4, t = lane % 4): a0 = A[g][32t..], a1 = A[g+8][32t..],
// a2 = A[g][128+32t..], a3 = A[g+8][128+32t..]; b0 = B[32t..][g], b1 = B[128+32t..][g];
// c0, c1 = C[g][2t], C[g][2t+1]; c2, c3 = the same columns of row g+8.
// A pure function of its inputs (not volatile), so loads may be scheduled across it.
__device__ __forceinline__ void mma_b1_and(int (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// cp_async16 for data read once: L2 fetches the whole 256-byte block around it (the pieces
// the other warps of the block ask for next).
__device__ __forceinline__ void cp_async16_streaming(void* smem, const void* gmem, int src_bytes) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}

// v, or zeros where !keep: an AND with a mask, so that no branch splits the loads from the MMAs.
__device__ __forceinline__ uint4 masked(uint4 v, bool keep) {
    const uint32_t m = keep ? 0xFFFFFFFFu : 0u;
    return make_uint4(v.x & m, v.y & m, v.z & m, v.w & m);
}

__device__ __forceinline__ uint32_t lds32(const unsigned char* p) { return *reinterpret_cast<const uint32_t*>(p); }

// ---- epilogue (both kernels) ----------------------------------------------------

// S = sum_a sum_b (+-2^(a+b)) C'[a][b] in int64, C'[a][b] = c[a * stride_a + b * stride_b]:
// the popcount of activation plane a AND weight plane b of one output (each <= K <= 2^23,
// so |S| < 2^23 * 2^16: exact). A sign plane (the top plane of a signed operand) weighs
// -2^(p-1); the pair is negative when exactly one of its planes is one.
__device__ __forceinline__ int64_t combine_planes(const BitplaneGemmArgs& g, const int* c, int stride_a, int stride_b) {
    const int p = g.x_bits, q = g.w_bits;
    int64_t s = 0;
    for (int a = 0; a < p; ++a) {
        const bool neg_a = g.x_signed && a == p - 1;
        for (int b = 0; b < q; ++b) {
            const bool neg = neg_a != (g.w_signed && b == q - 1);
            const int64_t t = static_cast<int64_t>(c[a * stride_a + b * stride_b]) << (a + b);
            s = neg ? s - t : s + t;
        }
    }
    return s;
}

// ---- decode: weight planes streamed from device memory ----------------------------

constexpr int kDecodeMaxRows = 64;   // M*p at most: 8 n8 tiles
constexpr int kDecodeWarps = 8;      // per block, at most (T tiles x S K-splits)
constexpr int kDecodeStages = 4;     // per-warp cp.async ring: 3 steps of weights in flight per warp
constexpr int kStepBytes = 16 * kChunkWords * 8;             // one m16 tile x 512 bits: 1 KB
constexpr int kRingBytes = kDecodeStages * kStepBytes;       // per warp

// How a decode block divides its work (see the file comment).
struct DecodeShape {
    int channels;  // C: outputs per token per block
    int tiles;     // T = C*q / 16 m16 tiles
    int splits;    // S warps along K per tile
    static DecodeShape of(int q) {
        const int pow2 = q & -q;  // the largest power of two dividing q (q <= 8)
        const int tiles = q / pow2;
        return DecodeShape{16 / pow2, tiles, std::max(1, kDecodeWarps / tiles)};
    }
};

// One block: channels [j0, j0 + C) of all M tokens. Warp w: m16 tile w % T (weight-plane
// rows j0*q + 16*(w % T) ..), K steps s, s + S, s + 2S, .. with s = w / T. NT n8 tiles
// cover activation rows 0 .. 8*NT - 1 (rows >= M*p are zeros: at most half of the MMAs,
// and compute is not what bounds this kernel). kw: the words of K both operands hold
// (min(ldx, ldw)).
template <int NT, int OUT>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    bitplane_decode_kernel(BitplaneGemmArgs g, DecodeShape shape, int64_t kw) {
    constexpr int kCols = 8 * NT;        // C' columns: activation plane rows
    constexpr int kTileInts = 16 * kCols;
    constexpr int kPartBytes = kDecodeWarps * kTileInts * 4;
    constexpr int kSmemBytes = kDecodeWarps * kRingBytes > kPartBytes ? kDecodeWarps * kRingBytes : kPartBytes;
    static_assert(kSmemBytes <= 48 * 1024, "static shared memory budget");
    // Main loop: one weight ring per warp. Epilogue: per-warp C' partials, in the same memory.
    __shared__ __align__(16) unsigned char smem[kSmemBytes];

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gid = lane >> 2, tig = lane & 3;
    const int tile = warp % shape.tiles, split = warp / shape.tiles;
    const int p = g.x_bits, q = g.w_bits;
    const int64_t j0 = static_cast<int64_t>(blockIdx.x) * shape.channels;
    const int64_t w_rows = g.n * q;
    const int x_rows = static_cast<int>(g.m) * p;  // <= kDecodeMaxRows
    // This thread's weight-plane rows: gid and gid + 8 of the warp's m16 tile. It copies its own
    // 16-byte pieces of them into the warp's ring and reads back only those, so the ring needs
    // no barrier but the warp's own (__syncwarp orders a slot's reads before its refill).
    const int64_t r = j0 * q + tile * 16 + gid;
    const bool lo_ok = r < w_rows, hi_ok = r + 8 < w_rows;
    const uint64_t* w_lo = g.w + (lo_ok ? r * g.ldw : 0);
    const uint64_t* w_hi = g.w + (hi_ok ? (r + 8) * g.ldw : 0);
    const int lo_off = gid * 64 + tig * 16, hi_off = (gid + 8) * 64 + tig * 16;
    unsigned char* ring = smem + warp * kRingBytes;
    const int64_t steps = (kw + kChunkWords - 1) / kChunkWords;
    const int64_t my_steps = split < steps ? (steps - split + shape.splits - 1) / shape.splits : 0;
    // Thread (gid, tig) of step s holds words 8s + 2tig, 8s + 2tig + 1 (bits 128*tig .. of the
    // step) of each of its rows; a word pair is inside kw or not (kw is even). Pieces outside the
    // operands are zero-filled (src-size 0).
    auto word_of = [&](int64_t i) { return (split + i * shape.splits) * kChunkWords + tig * 2; };
    auto fetch = [&](int64_t i) {  // the warp's i-th step into slot i % kDecodeStages
        if (i >= my_steps) return;
        unsigned char* slot = ring + static_cast<int>(i % kDecodeStages) * kStepBytes;
        const int64_t word = word_of(i);
        const bool in_k = word < kw;
        cp_async16_streaming(slot + lo_off, in_k && lo_ok ? w_lo + word : g.w, in_k && lo_ok ? 16 : 0);
        cp_async16_streaming(slot + hi_off, in_k && hi_ok ? w_hi + word : g.w, in_k && hi_ok ? 16 : 0);
    };

    int acc[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[n][c] = 0;

#pragma unroll
    for (int s = 0; s < kDecodeStages - 1; ++s) {
        fetch(s);
        cp_async_commit();
    }
    for (int64_t i = 0; i < my_steps; ++i) {
        cp_async_wait<kDecodeStages - 2>();  // this thread's pieces of step i have landed
        __syncwarp();
        fetch(i + kDecodeStages - 1);        // refills the slot read in step i - 1
        cp_async_commit();
        const unsigned char* slot = ring + static_cast<int>(i % kDecodeStages) * kStepBytes;
        const uint4 lo = *reinterpret_cast<const uint4*>(slot + lo_off);
        const uint4 hi = *reinterpret_cast<const uint4*>(slot + hi_off);
        const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};
        const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};
        const int64_t word = word_of(i);
        const bool in_k = word < kw;
#pragma unroll
        for (int n = 0; n < NT; ++n) {
            const int xr = n * 8 + gid;
            const bool ok = in_k && xr < x_rows;
            const uint4 b = masked(
                __ldg(reinterpret_cast<const uint4*>(g.x + (ok ? static_cast<int64_t>(xr) * g.ldx + word : 0))), ok);
            const uint32_t b0[2] = {b.x, b.y};
            const uint32_t b1[2] = {b.z, b.w};
            mma_b1_and(acc[n], a0, b0);
            mma_b1_and(acc[n], a1, b1);
        }
    }
    cp_async_wait<0>();
    __syncthreads();  // every ring is drained: the partials take over the memory

    // Partials of warp w: part[w][row][col], row = weight-plane row in the tile, col =
    // activation plane row.
    int* part = reinterpret_cast<int*>(smem);
    int* mine = part + warp * kTileInts;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
        const int col = n * 8 + tig * 2;
        mine[gid * kCols + col] = acc[n][0];
        mine[gid * kCols + col + 1] = acc[n][1];
        mine[(gid + 8) * kCols + col] = acc[n][2];
        mine[(gid + 8) * kCols + col + 1] = acc[n][3];
    }
    __syncthreads();
    // Split-K reduction into the slots of split 0: warp w = split * T + tile, so entry e of
    // split s is part[s * T * kTileInts + e], e = (16 * tile + row) * kCols + col. Exact in
    // int32: the S partials of an entry sum to one popcount over K.
    const int entries = shape.tiles * kTileInts;
    for (int e = threadIdx.x; e < entries; e += blockDim.x) {
        int s = part[e];
        for (int sp = 1; sp < shape.splits; ++sp) s += part[sp * entries + e];
        part[e] = s;
    }
    __syncthreads();
    // Outputs: local weight-plane row jj*q + b, activation plane row t*p + a.
    const int valid_j = static_cast<int>(g.n - j0 < shape.channels ? g.n - j0 : shape.channels);
    for (int o = threadIdx.x; o < static_cast<int>(g.m) * valid_j; o += blockDim.x) {
        const int t = o / valid_j, jj = o % valid_j;
        const int64_t s = combine_planes(g, part + jj * q * kCols + t * p, 1, kCols);
        store_out<OUT>(g, t, j0 + jj, s);
    }
}

template <int NT>
void launch_decode(const BitplaneGemmArgs& g, cudaStream_t stream) {
    const DecodeShape shape = DecodeShape::of(g.w_bits);
    const int64_t blocks = (g.n + shape.channels - 1) / shape.channels;
    if (blocks > 0x7FFFFFFFll)
        throw Error(LOWBIT_ERR_UNSUPPORTED, "bit-plane GEMM: " + std::to_string(blocks) + " thread blocks exceed the grid limit");
    const int64_t kw = std::min(g.ldx, g.ldw);
    const unsigned grid = static_cast<unsigned>(blocks);
    const int threads = 32 * shape.tiles * shape.splits;
    switch (g.out_type) {
        case LOWBIT_S32: bitplane_decode_kernel<NT, LOWBIT_S32><<<grid, threads, 0, stream>>>(g, shape, kw); break;
        case LOWBIT_F32: bitplane_decode_kernel<NT, LOWBIT_F32><<<grid, threads, 0, stream>>>(g, shape, kw); break;
        case LOWBIT_F16: bitplane_decode_kernel<NT, LOWBIT_F16><<<grid, threads, 0, stream>>>(g, shape, kw); break;
        default: bitplane_decode_kernel<NT, LOWBIT_BF16><<<grid, threads, 0, stream>>>(g, shape, kw); break;
    }
    LOWBIT_CUDA_CHECK_LAUNCH("bitplane_decode_kernel");
}

// NT = 1, 2, 4 or 8 n8 tiles: the smallest that holds M*p rows.
void run_decode(const BitplaneGemmArgs& g, cudaStream_t stream) {
    const int64_t rows = g.m * g.x_bits;
    if (rows <= 8)
        launch_decode<1>(g, stream);
    else if (rows <= 16)
        launch_decode<2>(g, stream);
    else if (rows <= 32)
        launch_decode<4>(g, stream);
    else
        launch_decode<8>(g, stream);
}

// ---- prefill: shared-memory tiles -------------------------------------------------

constexpr int kSmemRow = 80;  // bytes per row per stage: 64 + 16 padding

template <int BM, int BN, int WM, int WN, int STAGES>
struct Tile {
    static constexpr int kThreads = WM * WN * 32;
    static constexpr int kRows = BM + BN;
    static constexpr int kStageBytes = kRows * kSmemRow;
    static constexpr int kPipeBytes = STAGES * kStageBytes;
    static constexpr int kCLd = BN + 1;  // int32 partials per row in the epilogue
    static constexpr int kCBytes = BM * kCLd * 4;
    static constexpr int kSmemBytes = kPipeBytes > kCBytes ? kPipeBytes : kCBytes;
    static constexpr int MT = BM / WM / 16;  // m16 tiles per warp
    static constexpr int NT = BN / WN / 8;   // n8 tiles per warp
    static_assert(MT >= 1 && NT >= 1 && BM % (16 * WM) == 0 && BN % (8 * WN) == 0, "warp tiling");
    static_assert(kSmemBytes <= 48 * 1024, "static shared memory budget");
};

template <int BM, int BN, int WM, int WN, int STAGES, int OUT>
__global__ void __launch_bounds__(WM * WN * 32)
    bitplane_prefill_kernel(BitplaneGemmArgs g, int tm, int tn, int64_t m_blocks, int64_t chunks) {
    using T = Tile<BM, BN, WM, WN, STAGES>;
    __shared__ __align__(16) unsigned char smem[T::kSmemBytes];

    const int p = g.x_bits, q = g.w_bits;
    const int64_t mb = static_cast<int64_t>(blockIdx.x) % m_blocks, nb = static_cast<int64_t>(blockIdx.x) / m_blocks;
    const int64_t t0 = mb * tm, j0 = nb * tn;
    const int t_valid = static_cast<int>(g.m - t0 < tm ? g.m - t0 : tm);
    const int j_valid = static_cast<int>(g.n - j0 < tn ? g.n - j0 : tn);
    const int x_rows = t_valid * p, w_rows = j_valid * q;
    const uint64_t* xbase = g.x + t0 * p * g.ldx;
    const uint64_t* wbase = g.w + j0 * q * g.ldw;

    // One pipeline stage: rows [0, BM) of X', then [0, BN) of W', 4 x 16 bytes each.
    auto load_stage = [&](int stage, int64_t chunk) {
        unsigned char* st = smem + stage * T::kStageBytes;
        for (int i = threadIdx.x; i < T::kRows * 4; i += T::kThreads) {
            const int row = i >> 2, piece = i & 3;
            const bool is_x = row < BM;
            const int lr = is_x ? row : row - BM;
            const int64_t ld = is_x ? g.ldx : g.ldw;
            const int64_t word = chunk * kChunkWords + piece * 2;
            const bool ok = lr < (is_x ? x_rows : w_rows) && word < ld;  // ld is even: a pair is in or out
            const uint64_t* src = ok ? (is_x ? xbase : wbase) + lr * ld + word : g.x;
            cp_async16(st + row * kSmemRow + piece * 16, src, ok ? 16 : 0);
        }
    };

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gid = lane >> 2, tig = lane & 3;
    const int wm = warp / WN, wn = warp % WN;
    int acc[T::MT][T::NT][4];
#pragma unroll
    for (int a = 0; a < T::MT; ++a)
#pragma unroll
        for (int b = 0; b < T::NT; ++b)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[a][b][c] = 0;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < chunks) load_stage(s, s);
        cp_async_commit();
    }
    for (int64_t c = 0; c < chunks; ++c) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        const int64_t next = c + STAGES - 1;
        if (next < chunks) load_stage(static_cast<int>(next % STAGES), next);
        cp_async_commit();
        const unsigned char* st = smem + static_cast<int>(c % STAGES) * T::kStageBytes;
#pragma unroll
        for (int ks = 0; ks < 2; ++ks) {
            const int kb = ks * 32 + tig * 4;
            uint32_t af[T::MT][4], bf[T::NT][2];
#pragma unroll
            for (int a = 0; a < T::MT; ++a) {
                const unsigned char* r = st + (wm * (BM / WM) + a * 16 + gid) * kSmemRow + kb;
                af[a][0] = lds32(r);
                af[a][1] = lds32(r + 8 * kSmemRow);
                af[a][2] = lds32(r + 16);
                af[a][3] = lds32(r + 8 * kSmemRow + 16);
            }
#pragma unroll
            for (int b = 0; b < T::NT; ++b) {
                const unsigned char* r = st + (BM + wn * (BN / WN) + b * 8 + gid) * kSmemRow + kb;
                bf[b][0] = lds32(r);
                bf[b][1] = lds32(r + 16);
            }
#pragma unroll
            for (int a = 0; a < T::MT; ++a)
#pragma unroll
                for (int b = 0; b < T::NT; ++b) mma_b1_and(acc[a][b], af[a], bf[b]);
        }
    }
    cp_async_wait<0>();
    __syncthreads();

    // Partials to shared memory: C'[row][col], row-major with ld kCLd.
    int* cs = reinterpret_cast<int*>(smem);
#pragma unroll
    for (int a = 0; a < T::MT; ++a)
#pragma unroll
        for (int b = 0; b < T::NT; ++b) {
            const int r = wm * (BM / WM) + a * 16 + gid, col = wn * (BN / WN) + b * 8 + tig * 2;
            cs[r * T::kCLd + col] = acc[a][b][0];
            cs[r * T::kCLd + col + 1] = acc[a][b][1];
            cs[(r + 8) * T::kCLd + col] = acc[a][b][2];
            cs[(r + 8) * T::kCLd + col + 1] = acc[a][b][3];
        }
    __syncthreads();

    for (int o = threadIdx.x; o < t_valid * j_valid; o += T::kThreads) {
        const int ti = o / j_valid, tj = o % j_valid;
        const int64_t s = combine_planes(g, cs + ti * p * T::kCLd + tj * q, T::kCLd, 1);
        store_out<OUT>(g, t0 + ti, j0 + tj, s);
    }
}

template <int BM, int BN, int WM, int WN, int STAGES>
void launch_prefill(const BitplaneGemmArgs& g, cudaStream_t stream) {
    const int tm = BM / g.x_bits, tn = BN / g.w_bits;
    const int64_t m_blocks = (g.m + tm - 1) / tm, n_blocks = (g.n + tn - 1) / tn;
    const int64_t blocks = m_blocks * n_blocks;
    if (blocks > 0x7FFFFFFFll)
        throw Error(LOWBIT_ERR_UNSUPPORTED, "bit-plane GEMM: " + std::to_string(blocks) + " thread blocks exceed the grid limit");
    const int64_t kw = (g.k + 63) / 64;
    const int64_t chunks = (kw + kChunkWords - 1) / kChunkWords;
    constexpr int threads = WM * WN * 32;
    const unsigned grid = static_cast<unsigned>(blocks);
    switch (g.out_type) {
        case LOWBIT_S32:
            bitplane_prefill_kernel<BM, BN, WM, WN, STAGES, LOWBIT_S32><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
        case LOWBIT_F32:
            bitplane_prefill_kernel<BM, BN, WM, WN, STAGES, LOWBIT_F32><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
        case LOWBIT_F16:
            bitplane_prefill_kernel<BM, BN, WM, WN, STAGES, LOWBIT_F16><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
        default:
            bitplane_prefill_kernel<BM, BN, WM, WN, STAGES, LOWBIT_BF16><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
    }
    LOWBIT_CUDA_CHECK_LAUNCH("bitplane_prefill_kernel");
}

// LOWBIT_BITPLANE_DECODE=binary keeps 2-bit weights at M <= 16 on the binary decode / tiled
// kernels instead of the INT8 weight-streaming kernel (for comparisons); read once.
bool w2_stream_allowed() {
    static const bool allowed = [] {
        const char* v = std::getenv("LOWBIT_BITPLANE_DECODE");
        return v == nullptr || std::strcmp(v, "binary") != 0;
    }();
    return allowed;
}

}  // namespace

void CudaBackend::bitplane_gemm(const BitplaneGemmArgs& g) {
    activate();
    // 2-bit weights at decode sizes: the weight-streaming kernel expands the two planes to INT8
    // codes and runs INT8 MMAs (gemv_stream.cu): one MMA per 32 K values and 8 tokens, where the
    // binary kernels need one per plane pair (16 for W2A8). Exact, the same bits.
    if (g.w_bits == 2 && g.m <= kStreamMaxM && w2_stream_allowed()) {
        StreamProblem sp{};
        sp.format = g.x_bits == 8 && !g.x_signed ? StreamFormat::W2xU8 : StreamFormat::W2;
        sp.planes = &g;
        sp.m = g.m;
        sp.n = g.n;
        sp.k = g.k;
        if (stream_gemm_fits(sp)) {
            run_stream_gemm(sp);
            return;
        }
    }
    if (g.m * g.x_bits <= kDecodeMaxRows)
        run_decode(g, stream_);
    else
        launch_prefill<64, 128, 2, 2, 3>(g, stream_);
}

}  // namespace cuda
}  // namespace lowbit
