// gemm_simt.cu -- the portable integer GEMM: C[M,N] = A[M,K] * B[N,K]^T with
// exact int32 accumulation and the fused dequantizing epilogue, for every
// shape and stride: odd K, M = 1, N = 1, ld > cols, S4 rows starting mid-word.
//
// The classic shared-memory tiling, with __dp4a (4 x int8 products summed into
// an int32, sm_61+) as the multiply-add:
//
//   block tile   64 (M) x 64 (N), K in steps of 64; 256 threads, 16 x 16
//   thread tile  4 x 4 outputs: rows ty + 16*i, columns tx + 16*j
//   shared       As[k/4][m], Bs[k/4][n]: one 32-bit word = 4 consecutive K
//                values of one row, K-major so that a warp's fragment reads
//                are conflict-free (row stride 66 words: the stores are too)
//
// Global -> shared: each thread fetches whole words (4 K values). S8 operands
// are read as one 32-bit load when the row is 4-byte aligned and the word is
// inside K; S4 operands as one 16-bit load of 4 nibbles, sign-extended to
// int8 in the word (so the inner loop is the same __dp4a for all three operand
// pairs). Everything past M, N or K is zero-filled, which makes the tails exact.
//
// This is the correctness baseline and the fallback; the tuned CUTLASS SM90
// path plugs in beside it in gemm_dispatch.cu.
#include <climits>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "epilogue.cuh"
#include "quant_math.cuh"  // grid_for

namespace lowbit {
namespace cuda {
namespace {

constexpr int kBM = 64, kBN = 64, kBK = 64;
constexpr int kKW = kBK / 4;   // 32-bit words per row and K step
constexpr int kLds = kBM + 2;  // shared row stride in words (bank-conflict-free stores)
constexpr int kThreads = 256;
static_assert(kBM == kBN && kBM * kKW % kThreads == 0, "tile shape");

struct Operand {
    const unsigned char* p;
    int64_t ld;     // elements (nibbles for S4)
    int64_t rows;   // M for A, N for B
    bool aligned;   // every row starts 4-byte aligned (ld % 4 == 0)
};

// K values k0 .. k0+3 (k0 % 4 == 0, k0 < K) of one row, as 4 packed int8.
template <bool S4>
__device__ __forceinline__ int load_k4(const Operand& op, int64_t row, int64_t k0, int64_t K) {
    const bool whole = op.aligned && k0 + 4 <= K;
    if constexpr (!S4) {
        const unsigned char* p = op.p + row * op.ld + k0;
        if (whole) return *reinterpret_cast<const int*>(p);
        unsigned w = 0;
        for (int i = 0; i < 4; ++i)
            if (k0 + i < K) w |= static_cast<unsigned>(p[i]) << (8 * i);
        return static_cast<int>(w);
    } else {
        // Element k of the row is nibble k % 2 of byte row*ld/2 + k/2 (low nibble first).
        const unsigned char* p = op.p + row * (op.ld / 2) + k0 / 2;
        unsigned nib;  // 4 nibbles, element k0 + i in bits 4i .. 4i+3
        if (whole) {
            nib = *reinterpret_cast<const unsigned short*>(p);
        } else {
            nib = p[0];
            if (k0 + 2 < K) nib |= static_cast<unsigned>(p[1]) << 8;
        }
        unsigned w = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            int v = static_cast<int>(nib << (28 - 4 * i)) >> 28;  // sign-extend nibble i
            if (k0 + i < K) w |= (static_cast<unsigned>(v) & 0xffu) << (8 * i);
        }
        return static_cast<int>(w);
    }
}

// One K step of a 64-row operand tile into shared memory, zero past rows/K.
template <bool S4>
__device__ __forceinline__ void load_tile(int (*smem)[kLds], const Operand& op, int64_t row0, int64_t k0,
                                          int64_t K) {
#pragma unroll
    for (int it = 0; it < kBM * kKW / kThreads; ++it) {
        const int e = it * kThreads + threadIdx.x;
        const int r = e / kKW, w = e % kKW;  // consecutive threads: consecutive words of a row
        const int64_t row = row0 + r, k = k0 + 4 * w;
        smem[w][r] = (row < op.rows && k < K) ? load_k4<S4>(op, row, k, K) : 0;
    }
}

template <bool A4, bool B4>
__global__ void __launch_bounds__(kThreads, 2) gemm_simt_kernel(Operand a, Operand b, int64_t K, Epilogue ep) {
    __shared__ int As[kKW][kLds];
    __shared__ int Bs[kKW][kLds];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t tiles_n = (b.rows + kBN - 1) / kBN;
    const int64_t tiles = (a.rows + kBM - 1) / kBM * tiles_n;

    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        const int64_t m0 = t / tiles_n * kBM, n0 = t % tiles_n * kBN;
        int acc[4][4] = {};
        for (int64_t k0 = 0; k0 < K; k0 += kBK) {
            load_tile<A4>(As, a, m0, k0, K);
            load_tile<B4>(Bs, b, n0, k0, K);
            __syncthreads();
#pragma unroll
            for (int w = 0; w < kKW; ++w) {
                int af[4], bf[4];
#pragma unroll
                for (int i = 0; i < 4; ++i) af[i] = As[w][ty + 16 * i];
#pragma unroll
                for (int j = 0; j < 4; ++j) bf[j] = Bs[w][tx + 16 * j];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(af[i], bf[j], acc[i][j]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int64_t row = m0 + ty + 16 * i;
            if (row >= a.rows) continue;
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int64_t col = n0 + tx + 16 * j;
                if (col < b.rows) ep.store(row, col, acc[i][j]);
            }
        }
    }
}

Operand operand(const void* p, int64_t ld, int64_t rows) {
    bool aligned = ld % 4 == 0 && reinterpret_cast<uintptr_t>(p) % 4 == 0;
    return Operand{static_cast<const unsigned char*>(p), ld, rows, aligned};
}

}  // namespace

void launch_gemm_simt(const GemmArgs& g, const LaunchEnv& env) {
    const Operand a = operand(g.a, g.lda, g.m), b = operand(g.b, g.ldb, g.n);
    const int64_t tiles = (g.m + kBM - 1) / kBM * ((g.n + kBN - 1) / kBN);
    const unsigned blocks = grid_for(tiles, INT_MAX);
    const Epilogue ep = Epilogue::from(g);
    if (g.a_type == LOWBIT_S8 && g.b_type == LOWBIT_S8) {
        gemm_simt_kernel<false, false><<<blocks, kThreads, 0, env.stream>>>(a, b, g.k, ep);
    } else if (g.a_type == LOWBIT_S8) {  // (S8, S4)
        gemm_simt_kernel<false, true><<<blocks, kThreads, 0, env.stream>>>(a, b, g.k, ep);
    } else {                             // (S4, S4)
        gemm_simt_kernel<true, true><<<blocks, kThreads, 0, env.stream>>>(a, b, g.k, ep);
    }
    LOWBIT_CUDA_CHECK_LAUNCH("gemm_simt_kernel");
}

}  // namespace cuda
}  // namespace lowbit
