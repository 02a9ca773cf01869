// bitplane_gemm.cu -- CudaBackend::bitplane_gemm: the ABQ-LLM any-bit GEMM on
// binary tensor cores (mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc,
// sm_80 and later: every arch of LOWBIT_CUDA_ARCHS runs the same code).
//
// One binary GEMM. With the lowbit.h layout, the p planes of a token are
// adjacent rows, so the activations are a binary matrix X' of M*p rows (row
// t*p + a = plane a of token t) and the weights W' of N*q rows, both ldp
// words per row. A thread block owns TM = BM / p whole tokens and TN = BN / q
// whole channels, i.e. the C' = X' W'^T tile of BM x BN binary dot products
// (rows past TM*p / TN*q are zero-filled and wasted: at most p-1 of BM):
//
//   mainloop   STAGES-deep cp.async pipeline over K in chunks of 512 bits
//              (64 bytes per row, rows padded to 80 bytes in shared memory so
//              that the 32-bit fragment loads of a warp hit 32 distinct banks);
//              per chunk two m16n8k256 steps per warp tile. Rows and words
//              outside the operands are zero-filled by cp.async (src-size 0).
//   epilogue   the int32 popcounts C' (each <= K: exact) go to shared memory;
//              each output (t, j) combines its p x q partials in int64:
//                S = sum_a sum_b (+-2^(a+b)) C'[t*p+a][j*q+b]
//              (negative when exactly one of the planes is a sign plane), adds
//              the zero-point terms in uint64 as the CPU backend does, and
//              applies ((float)acc * sx) * sw (+ bias) with __ll2float_rn,
//              __fmul_rn, __fadd_rn: the CPU backend's bits. No int32 -> half
//              conversion anywhere before the scales (the ABQ-LLM overflow).
//
// Two tile shapes: BM = 16 rows when M*p <= 32 (decode: one or a few tokens;
// 4 warps side by side over BN = 64), else BM = 64 x BN = 128 (2 x 2 warps,
// 32 x 64 each).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kChunkWords = 8;    // 512 bits of K per stage
constexpr int kSmemRow = 80;      // bytes per row per stage: 64 + 16 padding

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void mma_b1_and(int (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ uint32_t lds32(const unsigned char* p) { return *reinterpret_cast<const uint32_t*>(p); }

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

template <int OUT>
__device__ __forceinline__ void store_out(const BitplaneGemmArgs& g, int64_t i, int64_t j, int64_t acc) {
    const int64_t idx = i * g.ldo + j;
    if constexpr (OUT == LOWBIT_S32) {
        static_cast<int32_t*>(g.out)[idx] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(acc)));
    } else {
        float v = __fmul_rn(__ll2float_rn(acc), g.x_scales[g.x_scale_count == 1 ? 0 : i]);
        v = __fmul_rn(v, g.w_scales[g.w_scale_count == 1 ? 0 : j]);
        if (g.bias != nullptr) v = __fadd_rn(v, g.bias[j]);
        if constexpr (OUT == LOWBIT_F32) {
            static_cast<float*>(g.out)[idx] = v;
        } else if constexpr (OUT == LOWBIT_F16) {
            // NaN as the CPU backend encodes it (cpu/float_convert.h).
            const unsigned short h = v == v ? __half_as_ushort(__float2half_rn(v))
                                            : static_cast<unsigned short>(((__float_as_uint(v) >> 16) & 0x8000u) | 0x7E00u);
            static_cast<unsigned short*>(g.out)[idx] = h;
        } else {
            const unsigned u = __float_as_uint(v);
            const unsigned short h = v == v ? static_cast<unsigned short>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16)
                                            : static_cast<unsigned short>((u >> 16) | 0x0040u);
            static_cast<unsigned short*>(g.out)[idx] = h;
        }
    }
}

template <int BM, int BN, int WM, int WN, int STAGES, int OUT>
__global__ void __launch_bounds__(WM * WN * 32)
    bitplane_gemm_kernel(BitplaneGemmArgs g, int tm, int tn, int64_t m_blocks, int64_t chunks) {
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

    const uint64_t k = static_cast<uint64_t>(g.k);
    for (int o = threadIdx.x; o < t_valid * j_valid; o += T::kThreads) {
        const int ti = o / j_valid, tj = o % j_valid;
        const int64_t i = t0 + ti, j = j0 + tj;
        int64_t s = 0;
        for (int a = 0; a < p; ++a) {
            const bool neg_a = g.x_signed && a == p - 1;
            const int* crow = cs + (ti * p + a) * T::kCLd + tj * q;
            for (int b = 0; b < q; ++b) {
                const bool neg = neg_a != (g.w_signed && b == q - 1);
                const int64_t t = static_cast<int64_t>(crow[b]) << (a + b);
                s = neg ? s - t : s + t;
            }
        }
        uint64_t acc64 = static_cast<uint64_t>(s);
        const uint64_t zx = g.x_zeros ? static_cast<uint64_t>(static_cast<int64_t>(g.x_zeros[i])) : 0;
        if (g.w_zeros) {
            const uint64_t zw = static_cast<uint64_t>(static_cast<int64_t>(g.w_zeros[j]));
            acc64 -= zw * static_cast<uint64_t>(static_cast<int64_t>(g.x_sums[i]));
            acc64 += k * zx * zw;
        }
        if (g.x_zeros) acc64 -= zx * static_cast<uint64_t>(static_cast<int64_t>(g.w_sums[j]));
        store_out<OUT>(g, i, j, static_cast<int64_t>(acc64));
    }
}

template <int BM, int BN, int WM, int WN, int STAGES>
void launch(const BitplaneGemmArgs& g, cudaStream_t stream) {
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
            bitplane_gemm_kernel<BM, BN, WM, WN, STAGES, LOWBIT_S32><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
        case LOWBIT_F32:
            bitplane_gemm_kernel<BM, BN, WM, WN, STAGES, LOWBIT_F32><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
        case LOWBIT_F16:
            bitplane_gemm_kernel<BM, BN, WM, WN, STAGES, LOWBIT_F16><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
        default:
            bitplane_gemm_kernel<BM, BN, WM, WN, STAGES, LOWBIT_BF16><<<grid, threads, 0, stream>>>(g, tm, tn, m_blocks, chunks);
            break;
    }
    LOWBIT_CUDA_CHECK_LAUNCH("bitplane_gemm_kernel");
}

}  // namespace

void CudaBackend::bitplane_gemm(const BitplaneGemmArgs& g) {
    activate();
    if (g.m * g.x_bits <= 32)
        launch<16, 64, 1, 4, 4>(g, stream_);
    else
        launch<64, 128, 2, 2, 3>(g, stream_);
}

}  // namespace cuda
}  // namespace lowbit
