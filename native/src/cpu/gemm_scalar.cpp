// gemm_scalar.cpp -- the portable micro-kernel: plain C++ dot products.
//
// This is the reference path (LOWBIT_ISA_SCALAR). Accumulation is in uint32,
// so it wraps like the SIMD kernels instead of invoking signed-overflow UB;
// the result is exact whenever the true sum fits in int32. The inner loop is
// simple enough for the compiler to vectorize with baseline SSE2 (pmaddwd).
#include "cpu/gemm_kernels.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr int kMR = 4;
constexpr int kNR = 4;

uint32_t dot_s8(const int8_t* a, const int8_t* b, int64_t k) {
    uint32_t s = 0;
    for (int64_t kk = 0; kk < k; ++kk) s += static_cast<uint32_t>(static_cast<int32_t>(a[kk]) * b[kk]);
    return s;
}

void tile_scalar(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int mr, int nr, int32_t* c,
                 int64_t ldc) {
    for (int i = 0; i < mr; ++i)
        for (int j = 0; j < nr; ++j) c[i * ldc + j] = static_cast<int32_t>(dot_s8(a + i * lda, b + j * ldb, k));
}

}  // namespace

// Portable S4 unpacking, also the tail of the SIMD versions.
void unpack_s4_scalar(const uint8_t* src, int64_t k, int8_t* dst) {
    const int64_t pairs = k / 2;
    for (int64_t p = 0; p < pairs; ++p) {
        const int v = src[p];
        dst[2 * p] = static_cast<int8_t>(((v & 0x0F) ^ 0x08) - 0x08);
        dst[2 * p + 1] = static_cast<int8_t>(((v >> 4) ^ 0x08) - 0x08);
    }
    if (k & 1) dst[k - 1] = static_cast<int8_t>(((src[pairs] & 0x0F) ^ 0x08) - 0x08);
}

GemmKernel gemm_kernel_scalar() { return GemmKernel{"scalar", kMR, kNR, 0, tile_scalar, unpack_s4_scalar, nullptr, 0, 0}; }

}  // namespace cpu
}  // namespace lowbit
