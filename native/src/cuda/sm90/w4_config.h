// w4_config.h -- the SM90 fused 4-bit-weight GEMM configurations as seen from the dispatcher: a
// problem, the entry points of one compiled kernel, and the registry. Host code only; CUTLASS
// stays inside the sm90/w4_*.cu files (compiled for sm_90a alone).
//
// "Fused": the 4-bit weight codes travel from global memory to shared memory as codes (TMA), and
// are expanded to INT8 in registers right before the INT8 wgmma that consumes them (CUTLASS's
// mixed-input mainloop, A operand from registers). No INT8 copy of the weights is ever written,
// so the weights cost N x K / 2 bytes of traffic per call instead of the expansion path's
// N x K / 2 + 2 x N x K (expand_weights.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace lowbit {
namespace cuda {
namespace sm90 {

// How the weight codes become the INT8 operand W8 (lowbit.h), one compiled mainloop each.
enum class W4Format {
    S4,         // W8 = q, signed nibble (W4A8, and W4A4 after its activations are expanded)
    DgqSigned,  // W8 = low 8 bits of q * S2, q signed (DGQ without zero points)
    DgqZero,    // W8 = low 8 bits of (q - z) * S2 = q * S2 + (-z * S2), q unsigned (DGQ with zero points)
};
constexpr int kW4FormatCount = 3;

// out[M,N] = epilogue(A[M,K] * W8[N,K]^T). The kernel computes the transposed product
// out^T[N,M] = W8 * A^T, so that the 4-bit operand is CUTLASS's A (the one that goes through
// registers) and the output is written column-major, i.e. as out's rows.
struct W4Problem {
    const void* w;       // packed codes, N rows of ldw nibbles (lowbit.h's S4 packing)
    int64_t ldw;         // elements; multiple of 32 (16-byte aligned rows for TMA)
    const void* a;       // S8 activations, M x K
    int64_t lda;
    int64_t m, n, k;
    // DGQ only: per-group terms, column-major per group ([K / group][N], N contiguous), as the
    // mainloop's TMA reads them, as 32-bit lanes: the scale S2 and, for DgqZero, the offset
    // (-z * S2) mod 2^32 (only the low 8 bits of code * S2 + offset reach the INT8 operand).
    const uint32_t* group_scales;
    const uint32_t* group_offsets;
    int64_t group;
    const float* a_scales;  // 1 or m entries
    int64_t a_scale_count;
    const float* b_scales;  // 1 or n entries
    int64_t b_scale_count;
    const float* bias;      // n entries, or null
    void* out;
    int64_t ldo;            // elements
    int device;
    int sm_count;
};

// One compiled kernel (one configuration, one format, one output type).
struct W4Ops {
    bool (*can_implement)(const W4Problem&);
    size_t (*workspace_bytes)(const W4Problem&);
    // Enqueues the kernel on stream; workspace holds workspace_bytes(p) bytes. Throws lowbit::Error.
    void (*run)(const W4Problem&, void* workspace, cudaStream_t stream, const char* name);
};

// One configuration: tile (weights x tokens x K), cluster and schedule, for every format and both
// 16-bit output types: ops[format][0] F16, ops[format][1] BF16. Entries a configuration cannot
// compile (DGQ on tiles of fewer than 32 channels; none today) have null function pointers.
struct W4Config {
    const char* name;  // "w4_<schedule>_<tile>_c<cluster>", tile in the kernel's (weights x tokens x K) order
    int tile_k;        // DGQ groups must be a multiple of it
    W4Ops ops[kW4FormatCount][2];
};

int w4_config_count();
const W4Config& w4_config(int index);
int w4_config_index(const char* name);

// One function per configuration, each defined in its own w4_<name>.cu.
W4Config w4_config_pp_64x128x128_c1x1();
W4Config w4_config_coop_128x128x128_c1x1();
W4Config w4_config_coop_128x256x128_c2x1();

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
