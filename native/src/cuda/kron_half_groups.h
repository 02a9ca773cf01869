// kron_half_groups.h -- the default LOWBIT_KRON_HALF kernel (kron_half_groups.cu): what its
// launcher needs from CudaBackend::kron_quantize_half (kron_quantize_half.cu), which also keeps the
// first kernel selectable with LOWBIT_KRON_HALF_IMPL=v1.
#pragma once

#include "../backend.h"
#include "cuda_backend.h"

namespace lowbit {
namespace cuda {

// The tensor-core tiling of a factor pair, shared by both HALF kernels' launch shapes.
struct KronFactorTiles {
    int n1, n2, n;
    int p1, p2;            // n1, n2 rounded up to a multiple of 16
    int ld1, ld2;          // p1 + 8, p2 + 8: row strides (halves) of P1', and of P2' and X'
    int strips;            // S = p1 / 16: warps per token (group)
    int chunks2;           // p2 / 16

    static KronFactorTiles of(int n1, int n2) {
        KronFactorTiles t{};
        t.n1 = n1;
        t.n2 = n2;
        t.n = n1 * n2;
        t.p1 = (n1 + 15) / 16 * 16;
        t.p2 = (n2 + 15) / 16 * 16;
        t.ld1 = t.p1 + 8;
        t.ld2 = t.p2 + 8;
        t.strips = t.p1 / 16;
        t.chunks2 = t.p2 / 16;
        return t;
    }
};

// The shape of one launch, computed on the host (kron_half_groups.cu's header comment explains it).
struct KronGroupsGeom : KronFactorTiles {
    int groups;            // G: token groups (S warps each) per block
    int units_per_row;     // n2 / 8 (unit8)
    int unit_row_magic;    // ceil(2^16 / units_per_row): u / units_per_row = u * magic >> 16 for u < 4096
    int stage_ld;          // bytes of one staged row of x (n * x_bytes rounded up to 16)
    int codes_ld;          // bytes of one group's code buffer (rounded up to 16)
    int fixed_bytes;       // bytes of P1', P2' at the start of dynamic shared memory
    int group_bytes;       // bytes of one group's X', staged row and codes
    bool cp_async;         // x's rows are 16-byte aligned and n * x_bytes % 16 == 0
    bool unit8;            // n2 % 8 == 0: steps 1-2 on units of 8 consecutive elements
    bool packed_codes;     // the code buffer holds the codes in q's layout (S8, or S4 with n2 even)
    int q_unit;            // 16, 4 or 1: the store width q's rows allow
    bool strip_store;      // packed_codes and q_unit == 16: each warp stores its strip's codes itself
    bool p_vec;            // n1, n2 multiples of 4 and P1, P2 16-byte aligned: the prologue on quads
};

struct KronHalfGroupsPlan {
    KronGroupsGeom g;
    const void* kernel;    // one instantiation of kron_half_groups_kernel
    unsigned blocks;
    int threads;
    size_t smem;           // dynamic shared memory bytes
};

// Whether the default HALF kernel runs a (its shared memory fits the device); fills plan. No launch.
bool plan_kron_half_groups(const KronQuantizeArgs& a, int device, int sm_count, KronHalfGroupsPlan& plan);

// Enqueues the plan on env.stream.
void launch_kron_half_groups(const KronQuantizeArgs& a, const KronHalfGroupsPlan& plan, const LaunchEnv& env);

}  // namespace cuda
}  // namespace lowbit
