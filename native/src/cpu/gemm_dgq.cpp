// gemm_dgq.cpp -- the DGQ A8W4 GEMM driver (lowbit_gemm_dgq on the CPU).
//
//   out[M,N] = epilogue( A[M,K] * W8[N,K]^T ),  W8 expanded from 4-bit codes
//
// Same structure as gemm.cpp (blocking, threading, fused epilogue, the same
// micro-kernels and epilogue code, hence the same bits on every ISA), with one
// difference in operand preparation: each task expands its block of weight
// rows to INT8 into that thread's scratch -- unpack the nibbles (unpack_s4),
// then multiply group by group in integers (dgq_kernels.h) -- and reuses it
// for all of its rows of A. A block is sized to stay in L2 (kBBlockBytes), so
// the INT8 weights never go back to memory; only the 4-bit codes are read
// from it. Tasks are cut along N first (every N block is expanded once per M
// block, so fewer M blocks mean less re-expansion), then along M.
//
// Small M (decode: M <= 4) on AVX-512 VNNI with G a multiple of 8 takes
// another route, bound by reading the 4-bit codes once: dgq_gemv_avx512
// multiplies the codes as they are and scales per group in registers, and
// this driver subtracts the zero-point terms S2 * z * (group sums of A). The
// result is the same exact int32 accumulator, hence the same output bits, for
// weights that pass lowbit_dgq_check (lowbit.h leaves the others' results
// unspecified).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/dgq_kernels.h"
#include "cpu/epilogue.h"
#include "cpu/gemm_kernels.h"
#include "cpu/scratch.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr int64_t kBBlockBytes = 384 * 1024;  // INT8 weight block of one task
constexpr int64_t kMinTaskMacs = 1 << 18;     // less work than this per task is not worth a thread
constexpr int64_t kTasksPerThread = 3;

thread_local Scratch t_w_scratch;      // the task's expanded INT8 weight rows
thread_local Scratch t_strip_scratch;  // MR x NB int32 tile strip

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

struct Kernels {
    GemmKernel gemm;
    DgqExpandFn expand;
};

Kernels select_kernels(int isa) {
    switch (isa) {
        case LOWBIT_ISA_AVX512_VNNI: return {gemm_kernel_avx512(), dgq_expand_avx512()};
        case LOWBIT_ISA_AVX2: return {gemm_kernel_avx2(), dgq_expand_avx2()};
        default: return {gemm_kernel_scalar(), dgq_expand_scalar()};
    }
}

struct Blocking {
    int64_t mb, nb, m_blocks, n_blocks;
};

Blocking choose_blocking(int64_t m, int64_t n, int64_t k, const GemmKernel& kern, int threads) {
    const int64_t t = threads <= 0 ? hardware_threads() : threads;
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    const int64_t target = static_cast<int64_t>(
        std::max(1.0, std::min(static_cast<double>(t * kTasksPerThread), macs / kMinTaskMacs)));
    const int64_t m_panels = ceil_div(m, kern.mr), n_panels = ceil_div(n, kern.nr);
    Blocking b;
    // N blocks: small enough for L2, and enough of them for the target.
    const int64_t nb_l2 = std::max<int64_t>(kern.nr, kBBlockBytes / k / kern.nr * kern.nr);
    const int64_t want_n = std::min(n_panels, std::max(ceil_div(n, nb_l2), target));
    b.nb = ceil_div(n_panels, want_n) * kern.nr;
    b.n_blocks = ceil_div(n, b.nb);
    // Still too few tasks (small N, large M): split M as well.
    const int64_t want_m = std::min(m_panels, std::max<int64_t>(1, ceil_div(target, b.n_blocks)));
    b.mb = ceil_div(m_panels, want_m) * kern.mr;
    b.m_blocks = ceil_div(m, b.mb);
    return b;
}

constexpr int64_t kMaxGemvRows = 4;
constexpr int64_t kMinGemvTaskBytes = 32 * 1024;  // packed weight bytes per task, as gemm.cpp
thread_local Scratch t_a_scratch;     // small M: A rows in nibble order
thread_local Scratch t_table_scratch; // small M: lane -> group table, group sums of A

// Section "small M" of the file comment.
void gemm_dgq_small_m(const DgqGemmArgs& g, int threads) {
    const int64_t m = g.m, n = g.n, k = g.k, group = g.group, groups = g.k / g.group;
    const int64_t lda = round_up(k, 128), chunks = lda / 128;
    int8_t* a = static_cast<int8_t*>(t_a_scratch.get(static_cast<size_t>(m * lda)));
    for (int64_t i = 0; i < m; ++i) gemv_s4_order(g.a + i * g.lda, k, a + i * lda);
    int32_t* table = static_cast<int32_t*>(t_table_scratch.get(static_cast<size_t>(16 * chunks + m * groups) * sizeof(int32_t)));
    int32_t* lane_group = table;
    for (int64_t ch = 0; ch < chunks; ++ch)
        for (int64_t l = 0; l < 16; ++l)
            lane_group[16 * ch + l] = static_cast<int32_t>((128 * ch + 8 * l) / group - (128 * ch) / group);
    int32_t* group_sums = table + 16 * chunks;  // A[i][g], exact (|sum| <= 128 * group)
    for (int64_t i = 0; i < m; ++i)
        for (int64_t gi = 0; gi < groups; ++gi) {
            int32_t s = 0;
            for (int64_t c = gi * group; c < (gi + 1) * group; ++c) s += g.a[i * g.lda + c];
            group_sums[i * groups + gi] = s;
        }
    const bool signed_codes = g.zero_points == nullptr;
    const int64_t t = threads <= 0 ? hardware_threads() : threads;
    const double bytes = static_cast<double>(n) * static_cast<double>((k + 1) / 2);
    const int64_t want = static_cast<int64_t>(std::max(1.0, std::min(static_cast<double>(t), bytes / kMinGemvTaskBytes)));
    const int64_t nb = round_up(ceil_div(n, want), 16);
    const int64_t tasks = ceil_div(n, nb);
    const int64_t ebytes = out_elem_bytes(g.out_type);
    parallel_for(tasks, threads, [&](int64_t task) {
        const int64_t j0 = task * nb, j1 = std::min(n, j0 + nb), w = j1 - j0;
        int32_t* strip = static_cast<int32_t*>(t_strip_scratch.get(static_cast<size_t>(m * w) * sizeof(int32_t)));
        dgq_gemv_avx512(a, lda, static_cast<int>(m), g.w + j0 * (g.ldw / 2), g.ldw / 2, k, w,
                        g.group_scales + j0 * groups, groups, group, signed_codes, lane_group, strip, w);
        for (int64_t row = 0; row < m; ++row) {
            const int32_t* sums = group_sums + row * groups;
            for (int64_t j = 0; j < w; ++j) {
                const uint8_t* s2 = g.group_scales + (j0 + j) * groups;
                const int8_t* z = signed_codes ? nullptr : g.zero_points + (j0 + j) * groups;
                uint32_t zero_terms = 0;  // modulo 2^32, as the kernel's sums
                for (int64_t gi = 0; gi < groups; ++gi)
                    zero_terms += static_cast<uint32_t>(s2[gi]) * static_cast<uint32_t>(signed_codes ? 8 : z[gi]) *
                                  static_cast<uint32_t>(sums[gi]);
                strip[row * w + j] = static_cast<int32_t>(static_cast<uint32_t>(strip[row * w + j]) - zero_terms);
            }
            EpilogueRow e{g.a_scales[g.a_scale_count == 1 ? 0 : row], g.channel_scales + j0, true,
                          g.bias ? g.bias + j0 : nullptr, g.out_type};
            epilogue_span(strip + row * w, w, 0, e, static_cast<char*>(g.out) + (row * g.ldo + j0) * ebytes);
        }
    });
}

uint32_t row_sum(const int8_t* a, int64_t k) {
    uint32_t s = 0;
    for (int64_t t = 0; t < k; ++t) s += static_cast<uint32_t>(static_cast<int32_t>(a[t]));
    return s;
}

}  // namespace

void gemm_dgq(const DgqGemmArgs& g, int isa, int threads) {
    if (isa == LOWBIT_ISA_AVX512_VNNI && g.m >= 1 && g.m <= kMaxGemvRows && g.group % 8 == 0) {
        gemm_dgq_small_m(g, threads);
        return;
    }
    const Kernels kk = select_kernels(isa);
    const GemmKernel& kern = kk.gemm;
    const int64_t m = g.m, n = g.n, k = g.k, groups = g.k / g.group;
    const int64_t wld = round_up(k, 64);

    // The B-offset correction of the VNNI kernel, per row of A.
    std::vector<uint32_t> correction(m, 0);
    if (kern.b_offset != 0) {
        const int64_t rows_per_task = std::max<int64_t>(1, (int64_t(1) << 16) / k);
        parallel_for(ceil_div(m, rows_per_task), threads, [&](int64_t task) {
            const int64_t i1 = std::min(m, (task + 1) * rows_per_task);
            for (int64_t i = task * rows_per_task; i < i1; ++i)
                correction[i] = kern.b_offset * row_sum(g.a + i * g.lda, k);
        });
    }

    const Blocking bl = choose_blocking(m, n, k, kern, threads);
    const int64_t ebytes = out_elem_bytes(g.out_type);
    parallel_for(bl.m_blocks * bl.n_blocks, threads, [&](int64_t task) {
        const int64_t i0 = (task % bl.m_blocks) * bl.mb, j0 = (task / bl.m_blocks) * bl.nb;
        const int64_t i1 = std::min(m, i0 + bl.mb), j1 = std::min(n, j0 + bl.nb);
        const int64_t nb = j1 - j0;

        // This task's weight rows, expanded to INT8.
        int8_t* w8 = static_cast<int8_t*>(t_w_scratch.get(nb * wld));
        for (int64_t j = 0; j < nb; ++j) {
            const int64_t row = j0 + j;
            int8_t* dst = w8 + j * wld;
            kern.unpack_s4(g.w + row * (g.ldw / 2), k, dst);
            kk.expand(dst, k, g.group, g.group_scales + row * groups,
                      g.zero_points ? g.zero_points + row * groups : nullptr);
        }

        int32_t* strip = static_cast<int32_t*>(t_strip_scratch.get(kern.mr * nb * sizeof(int32_t)));
        for (int64_t i = i0; i < i1; i += kern.mr) {
            const int mr = static_cast<int>(std::min<int64_t>(kern.mr, i1 - i));
            for (int64_t j = 0; j < nb; j += kern.nr) {
                const int nr = static_cast<int>(std::min<int64_t>(kern.nr, nb - j));
                kern.tile(g.a + i * g.lda, g.lda, w8 + j * wld, wld, k, mr, nr, strip + j, nb);
            }
            for (int r = 0; r < mr; ++r) {
                const int64_t row = i + r;
                EpilogueRow e{g.a_scales[g.a_scale_count == 1 ? 0 : row], g.channel_scales + j0, true,
                              g.bias ? g.bias + j0 : nullptr, g.out_type};
                epilogue_span(strip + r * nb, nb, correction[row], e,
                              static_cast<char*>(g.out) + (row * g.ldo + j0) * ebytes);
            }
        }
    });
}

}  // namespace cpu
}  // namespace lowbit
