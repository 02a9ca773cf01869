// gemm_simt.cuh -- the portable shared-memory tiled __dp4a GEMM kernel, generic
// over how a 32-bit word of 4 consecutive K values of an operand row is fetched
// (an Operand loader: S8, packed S4, or DGQ's 4-bit codes expanded with their
// integer group scales). Used by gemm_simt.cu (lowbit_gemm_s32 / _dequant)
// and gemm_dgq_simt.cu (lowbit_gemm_dgq); see gemm_simt.cu for the tiling.
#pragma once

#include "epilogue.cuh"

namespace lowbit {
namespace cuda {
namespace simt {

constexpr int kBM = 64, kBN = 64, kBK = 64;
constexpr int kKW = kBK / 4;   // 32-bit words per row and K step
constexpr int kLds = kBM + 2;  // shared row stride in words (bank-conflict-free stores)
constexpr int kThreads = 256;
static_assert(kBM == kBN && kBM * kKW % kThreads == 0, "tile shape");

// An S8 (S4 = false) or packed S4 (S4 = true) operand: load_k4 returns the K
// values k0 .. k0+3 (k0 % 4 == 0, k0 < K) of one row as 4 packed int8, zero
// past K.
template <bool S4>
struct Operand {
    const unsigned char* p;
    int64_t ld;     // elements (nibbles for S4)
    int64_t rows;   // M for A, N for B
    bool aligned;   // every row starts 4-byte aligned (ld % 4 == 0)

    __device__ __forceinline__ int load_k4(int64_t row, int64_t k0, int64_t K) const;
};

template <bool S4>
__device__ __forceinline__ int Operand<S4>::load_k4(int64_t row, int64_t k0, int64_t K) const {
    const Operand& op = *this;
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
template <class Op>
__device__ __forceinline__ void load_tile(int (*smem)[kLds], const Op& op, int64_t row0, int64_t k0, int64_t K) {
#pragma unroll
    for (int it = 0; it < kBM * kKW / kThreads; ++it) {
        const int e = it * kThreads + threadIdx.x;
        const int r = e / kKW, w = e % kKW;  // consecutive threads: consecutive words of a row
        const int64_t row = row0 + r, k = k0 + 4 * w;
        smem[w][r] = (row < op.rows && k < K) ? op.load_k4(row, k, K) : 0;
    }
}

template <class OpA, class OpB>
__global__ void __launch_bounds__(kThreads, 2) gemm_simt_kernel(OpA a, OpB b, int64_t K, Epilogue ep) {
    __shared__ int As[kKW][kLds];
    __shared__ int Bs[kKW][kLds];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const int64_t tiles_n = (b.rows + kBN - 1) / kBN;
    const int64_t tiles = (a.rows + kBM - 1) / kBM * tiles_n;

    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        const int64_t m0 = t / tiles_n * kBM, n0 = t % tiles_n * kBN;
        int acc[4][4] = {};
        for (int64_t k0 = 0; k0 < K; k0 += kBK) {
            load_tile(As, a, m0, k0, K);
            load_tile(Bs, b, n0, k0, K);
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

}  // namespace simt
}  // namespace cuda
}  // namespace lowbit
