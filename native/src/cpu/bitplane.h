// bitplane.h -- ABQ-LLM bit-plane operands on the CPU: the quantize-and-pack
// pass, the GEMM driver, and the per-ISA plane-pair micro-kernels it calls.
//
// Layout (lowbit.h): row r of a p-plane operand is p consecutive planes of ld
// 64-bit words, word w of plane i holding bit i of the codes of columns
// 64w .. 64w + 63 (column 64w + b in bit b). Padding columns are zero.
//
// A micro-kernel computes, for an mr x nr tile of (x rows, w rows),
//     S[r][c] = sum_(a<p) sum_(b<q) cx[a] * cw[b] * popc(X_a[r] AND W_b[c])
// over the first kw words of each plane, exactly (int64), where cx / cw are
// the plane weights (2^a, the top plane negated for a signed operand).
// Kernels live in the ISA-specific sources and follow gemm_kernels.h's rule:
// intrinsics only there, shared templates with internal linkage.
#pragma once

#include <cstdint>

#include "backend.h"

namespace lowbit {
namespace cpu {

// One operand of a tile: `rows` points at the first row's plane 0; row r's
// plane i starts at rows + r * row_stride + i * ld.
struct PlaneOperand {
    const uint64_t* rows;
    int64_t row_stride;  // words between rows: planes * ld
    int64_t ld;          // words between planes of one row
    int planes;
    const int64_t* weight;  // planes entries: the plane weights
};

// S for an mr x nr tile (mr <= kBitplaneMr, nr <= kBitplaneNr) into s
// (row r at s + r * lds).
using BitplaneTileFn = void (*)(const PlaneOperand& x, const PlaneOperand& w, int64_t kw, int mr, int nr,
                                int64_t* s, int64_t lds);

constexpr int kBitplaneMr = 2;
constexpr int kBitplaneNr = 4;

BitplaneTileFn bitplane_tile_scalar();   // bitplane_scalar.cpp: portable, no POPCNT assumed
BitplaneTileFn bitplane_tile_popcnt();   // bitplane_popcnt_avx2.cpp: hardware POPCNT, 64 bits at a time
BitplaneTileFn bitplane_tile_vpopcnt();  // bitplane_avx512vpopcnt.cpp: AVX-512 VPOPCNTDQ, 512 bits at a time

// True when this CPU and OS can run the VPOPCNTDQ kernel (AVX-512 F +
// VPOPCNTDQ + OS ZMM state); bitplane_isa.cpp. Independent of the ISA levels.
bool cpu_has_avx512_vpopcntdq();

// The kernel for a context ISA level: VPOPCNTDQ only at LOWBIT_ISA_AVX512_VNNI
// on a CPU that has it, POPCNT at AVX2 and above, else the portable one.
BitplaneTileFn select_bitplane_tile(int isa);

void bitplane_quantize(const BitplaneQuantizeArgs& args, int threads);  // bitplane_quantize.cpp
void bitplane_gemm(const BitplaneGemmArgs& args, int isa, int threads);  // bitplane_gemm.cpp

}  // namespace cpu
}  // namespace lowbit
