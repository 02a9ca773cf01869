// gemm_kernels.h -- the register-tile ("micro") kernels of the integer GEMM,
// one per instruction-set level, behind one small interface.
//
// A micro-kernel computes one tile of at most mr x nr outputs of
//
//     C[i][j] = sum_{k < K} A[i][k] * B'[j][k]          (int32, wrapping)
//
// where A rows and B rows are int8 in natural element order (S4 operands are
// unpacked by the driver, gemm.cpp), read directly with their own strides, any
// K >= 1. B' is B itself, or B + b_offset for kernels whose instruction wants
// an unsigned operand (AVX-512 VNNI vpdpbusd multiplies u8 x s8): the driver
// then subtracts b_offset * sum_k A[i][k] from every output of row i, exactly,
// in two's-complement arithmetic. The driver does blocking, threading and the
// epilogue; kernels only see raw pointers.
//
// Kernel sources (gemm_*.cpp) are compiled with different -m flags. They use
// intrinsics and plain C only -- no std:: templates or other inline functions
// with external linkage, whose out-of-line copies the linker could pick for
// baseline code.
#pragma once

#include <cstdint>

namespace lowbit {
namespace cpu {

// c[i * ldc + j] for i < mr <= MR, j < nr <= NR.
using GemmTileFn = void (*)(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t k, int mr, int nr,
                            int32_t* c, int64_t ldc);

// Unpacks k S4 values (two per byte, element c in byte c/2, low nibble first)
// to sign-extended int8 in natural element order.
using UnpackS4Fn = void (*)(const uint8_t* src, int64_t k, int8_t* dst);

// Small-M ("decode") kernel, m = 1..4 rows of A against n rows of B:
//
//     c[i * ldc + j] = sum_k A[i][k] * B'[j][k]          (int32, wrapping)
//
// B' = B + offset (GemmKernel::gemv_offset_s8 / _s4), corrected by the driver
// as for the tile kernel. S8 B: b holds n rows of k int8 (ldb bytes apart), a
// holds m rows of k int8 (lda apart, natural order). S4 B: b holds n rows of
// ceil(k/2) packed bytes (ldb bytes apart; the unused high nibble of an odd
// row end may hold anything) and a holds the rows in "nibble order" (see
// gemv_s4_order in gemm.cpp): per 128 elements, the 64 even ones then the 64
// odd ones, zero-padded to a multiple of 128 (lda >= that, a multiple of 64).
using GemvFn = void (*)(const int8_t* a, int64_t lda, int m, const uint8_t* b, int64_t ldb, bool b_s4, int64_t k,
                        int64_t n, int32_t* c, int64_t ldc);

struct GemmKernel {
    const char* name;
    int mr;            // rows of A per tile (MR)
    int nr;            // rows of B per tile (NR)
    uint32_t b_offset; // 0, or 128 when the kernel computes with B + 128
    GemmTileFn tile;
    UnpackS4Fn unpack_s4;  // same results on every ISA, vectorized where possible
    GemvFn gemv;           // small-M kernel, or null (the driver then uses tile)
    uint32_t gemv_offset_s8;  // B' = B + this for S8 B in gemv
    uint32_t gemv_offset_s4;  // B' = B + this for S4 B in gemv
};

void unpack_s4_scalar(const uint8_t* src, int64_t k, int8_t* dst);

// One row of k int8 in the order the gemv kernels pair with packed S4 rows:
// per 128 elements (64 packed bytes), the 64 even elements (low nibbles), then
// the 64 odd ones (high nibbles); zero beyond k, up to a multiple of 128
// (dst holds that many). Defined in gemm.cpp.
void gemv_s4_order(const int8_t* row, int64_t k, int8_t* dst);

GemmKernel gemm_kernel_scalar();  // gemm_scalar.cpp: portable C++, the reference
GemmKernel gemm_kernel_avx2();    // gemm_avx2.cpp: vpmaddwd on sign-extended int16
GemmKernel gemm_kernel_avx512();  // gemm_avx512.cpp: vpdpbusd (AVX-512 VNNI)

}  // namespace cpu
}  // namespace lowbit
