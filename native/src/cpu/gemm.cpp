// gemm.cpp -- the integer GEMM driver: operand preparation, blocking,
// threading and the fused epilogue around an ISA-specific micro-kernel.
//
//   out[M,N] = epilogue( A[M,K] * B[N,K]^T )      A, B K-contiguous ("TN")
//
// 1. Operands. The micro-kernels read int8 rows in natural element order.
//    S8 operands are used in place (no copy). S4 operands are unpacked to
//    int8 rows: A once per call (all rows, in parallel), B block by block
//    inside each task (into that thread's scratch, so it stays in L2). If the
//    kernel computes with B + 128 (AVX-512 VNNI), the per-row correction
//    128 * sum_k A[i][k] is computed in the same pass over A.
//
// 2. Blocking. The output is cut into task blocks of MB rows x NB columns.
//    NB is chosen so that a block of B (NB x K int8) fits in L2; the blocks
//    are then split further until there are about 3 tasks per thread, first
//    along M, then along N (so M = 1 decode still uses every thread: it is
//    split over N). Inside a task:
//
//        for each panel of MR rows of A            (stays in L1)
//            for each panel of NR rows of B        (streams from L2)
//                micro-kernel -> MR x NR int32 tile, into a strip buffer
//            epilogue on the MR x NB strip, row by row
//
//    so the int32 accumulator never exists beyond one strip of one task, and
//    the epilogue runs on contiguous row segments (vectorizable).
//
// 2b. Small M (decode, M = 1..4 rows of S8 A) on a kernel with a gemv
//    function: the GEMM is then bound by reading B once, so the output columns
//    are split into at most one contiguous range per thread (16-column
//    aligned), and only when each range has at least kMinGemvTaskBytes of
//    weights (below that, handing a task to a pool worker costs more than it
//    saves). The gemv kernel streams B's rows straight from memory (S4 nibbles
//    are split in registers; A is put in nibble order once per call, see
//    gemv_s4_order), into a per-thread M x range int32 strip, then the same
//    epilogue runs on it.
//
// 3. Epilogue (epilogue.h): raw int32 for S32 output, otherwise
//    ((float)acc * a_scale) * b_scale (+ bias) to F32/F16/BF16. It is portable
//    code shared by all ISA paths, so the paths are bit-identical.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/epilogue.h"
#include "cpu/gemm_kernels.h"
#include "cpu/ops.h"
#include "cpu/scratch.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr int64_t kBBlockBytes = 384 * 1024;  // target size of one task's B block
constexpr int64_t kMinTaskMacs = 1 << 18;     // less work than this per task is not worth a thread
constexpr int64_t kTasksPerThread = 3;
// Small M: weight bytes per task below which a GEMM is not split further.
// 32 KB splits every SmolLM2-135M decode GEMM (the smallest, attn_k/v in W4,
// is 55 KB) over 2 threads and keeps toy shapes inline; hot-cache handoff to a
// spinning pool worker costs ~1-2 us, i.e. about 32 KB of weight reads.
constexpr int64_t kMinGemvTaskBytes = 32 * 1024;
constexpr int64_t kMaxGemvRows = 4;

thread_local Scratch t_b_scratch;      // unpacked S4 rows of B for the current task
thread_local Scratch t_strip_scratch;  // MR x NB int32 tile strip
thread_local Scratch t_a_scratch;      // small M, S4 B: A rows in nibble order

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

uint32_t row_sum(const int8_t* a, int64_t k) {
    uint32_t s = 0;
    for (int64_t t = 0; t < k; ++t) s += static_cast<uint32_t>(static_cast<int32_t>(a[t]));
    return s;
}

GemmKernel select_kernel(int isa) {
    switch (isa) {
        case LOWBIT_ISA_AVX512_VNNI: return gemm_kernel_avx512();
        case LOWBIT_ISA_AVX2: return gemm_kernel_avx2();
        default: return gemm_kernel_scalar();
    }
}

// Section 2b of the file comment: m <= kMaxGemvRows, S8 A, kern.gemv set.
void gemm_small_m(const GemmArgs& g, const GemmKernel& kern, int threads) {
    const int64_t m = g.m, n = g.n, k = g.k;
    const bool s4 = g.b_type == LOWBIT_S4;
    const uint32_t offset = s4 ? kern.gemv_offset_s4 : kern.gemv_offset_s8;
    const int8_t* a = static_cast<const int8_t*>(g.a);
    int64_t lda = g.lda;
    uint32_t correction[kMaxGemvRows] = {0, 0, 0, 0};
    for (int64_t i = 0; i < m; ++i) correction[i] = offset * row_sum(a + i * g.lda, k);
    if (s4) {
        lda = round_up(k, 128);
        int8_t* ordered = static_cast<int8_t*>(t_a_scratch.get(static_cast<size_t>(m * lda)));
        for (int64_t i = 0; i < m; ++i) gemv_s4_order(a + i * g.lda, k, ordered + i * lda);
        a = ordered;
    }
    const uint8_t* b = static_cast<const uint8_t*>(g.b);
    const int64_t ldb = s4 ? g.ldb / 2 : g.ldb;  // bytes
    const int64_t row_bytes = s4 ? (k + 1) / 2 : k;

    const int64_t t = threads <= 0 ? hardware_threads() : threads;
    const double bytes = static_cast<double>(n) * static_cast<double>(row_bytes);
    const int64_t want = static_cast<int64_t>(std::max(1.0, std::min(static_cast<double>(t), bytes / kMinGemvTaskBytes)));
    const int64_t nb = round_up(ceil_div(n, want), 16);
    const int64_t tasks = ceil_div(n, nb);
    const int64_t ebytes = g.out_type == LOWBIT_S32 ? 4 : out_elem_bytes(g.out_type);

    parallel_for(tasks, threads, [&](int64_t task) {
        const int64_t j0 = task * nb, j1 = std::min(n, j0 + nb), w = j1 - j0;
        int32_t* strip = static_cast<int32_t*>(t_strip_scratch.get(static_cast<size_t>(m * w) * sizeof(int32_t)));
        kern.gemv(a, lda, static_cast<int>(m), b + j0 * ldb, ldb, s4, k, w, strip, w);
        for (int64_t row = 0; row < m; ++row) {
            EpilogueRow e{0.0f, nullptr, false, nullptr, g.out_type};
            if (g.out_type != LOWBIT_S32) {
                e.a_scale = g.a_scales[g.a_scale_count == 1 ? 0 : row];
                e.b_per_column = g.b_scale_count != 1;
                e.b_scale = e.b_per_column ? g.b_scales + j0 : g.b_scales;
                e.bias = g.bias ? g.bias + j0 : nullptr;
            }
            epilogue_span(strip + row * w, w, correction[row], e,
                          static_cast<char*>(g.out) + (row * g.ldo + j0) * ebytes);
        }
    });
}

// The task grid: MB x NB blocks.
struct Blocking {
    int64_t mb, nb, m_blocks, n_blocks;
};

Blocking choose_blocking(int64_t m, int64_t n, int64_t k, const GemmKernel& kern, int threads) {
    const int64_t t = threads <= 0 ? hardware_threads() : threads;
    // In double: m * n * k can exceed int64 for (absurd) valid shapes.
    const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    // Small M is bound by reading B: split it by B's bytes, as gemm_small_m does.
    const double min_task = m <= kMaxGemvRows ? static_cast<double>(kMinGemvTaskBytes * m) : static_cast<double>(kMinTaskMacs);
    const int64_t target = static_cast<int64_t>(
        std::max(1.0, std::min(static_cast<double>(t * kTasksPerThread), macs / min_task)));
    const int64_t m_panels = ceil_div(m, kern.mr), n_panels = ceil_div(n, kern.nr);

    Blocking b;
    b.nb = std::min(round_up(n, kern.nr), std::max<int64_t>(kern.nr, kBBlockBytes / k / kern.nr * kern.nr));
    b.n_blocks = ceil_div(n, b.nb);
    // Split M first (each B block is then shared by fewer tasks' A panels, but
    // B stays in L2 and only S4 B is re-unpacked per task).
    int64_t want_m = std::min(m_panels, ceil_div(target, b.n_blocks));
    b.mb = ceil_div(m_panels, want_m) * kern.mr;
    b.m_blocks = ceil_div(m, b.mb);
    // Still too few tasks (small M): split N further.
    if (b.m_blocks * b.n_blocks < target) {
        int64_t want_n = std::min(n_panels, std::max(b.n_blocks, ceil_div(target, b.m_blocks)));
        b.nb = ceil_div(n_panels, want_n) * kern.nr;
        b.n_blocks = ceil_div(n, b.nb);
    }
    return b;
}

}  // namespace

// One row of k int8 in the order the gemv kernels pair with packed S4 rows:
// per 128 elements (64 packed bytes), the 64 even elements (low nibbles), then
// the 64 odd ones (high nibbles); zero beyond k, up to round_up(k, 128).
void gemv_s4_order(const int8_t* row, int64_t k, int8_t* dst) {
    const int64_t padded = round_up(k, 128);
    std::fill(dst, dst + padded, static_cast<int8_t>(0));
    for (int64_t t = 0; t < k; ++t) {
        const int64_t r = t & 127;
        dst[(t - r) + (r & 1) * 64 + (r >> 1)] = row[t];
    }
}

void gemm(const GemmArgs& g, int isa, int threads) {
    const GemmKernel kern = select_kernel(isa);
    if (kern.gemv != nullptr && g.m >= 1 && g.m <= kMaxGemvRows && g.n >= 1 && g.k >= 1 && g.a_type == LOWBIT_S8) {
        gemm_small_m(g, kern, threads);
        return;
    }
    const int64_t m = g.m, n = g.n, k = g.k;
    const int64_t unpacked_ld = round_up(k, 64);

    // ---- 1. A as int8 rows, and the B-offset correction per row -------------
    const int8_t* a = static_cast<const int8_t*>(g.a);
    int64_t lda = g.lda;
    std::unique_ptr<int8_t[]> a_unpacked;
    std::vector<uint32_t> correction(m, 0);
    if (g.a_type == LOWBIT_S4 || kern.b_offset != 0) {
        if (g.a_type == LOWBIT_S4) a_unpacked.reset(new int8_t[m * unpacked_ld]);
        const int64_t rows_per_task = std::max<int64_t>(1, (int64_t(1) << 16) / k);
        parallel_for(ceil_div(m, rows_per_task), threads, [&](int64_t task) {
            const int64_t i1 = std::min(m, (task + 1) * rows_per_task);
            for (int64_t i = task * rows_per_task; i < i1; ++i) {
                const int8_t* row = static_cast<const int8_t*>(g.a) + i * g.lda;
                if (g.a_type == LOWBIT_S4) {
                    int8_t* dst = a_unpacked.get() + i * unpacked_ld;
                    kern.unpack_s4(static_cast<const uint8_t*>(g.a) + i * (g.lda / 2), k, dst);
                    row = dst;
                }
                if (kern.b_offset != 0) correction[i] = kern.b_offset * row_sum(row, k);
            }
        });
        if (g.a_type == LOWBIT_S4) {
            a = a_unpacked.get();
            lda = unpacked_ld;
        }
    }

    // ---- 2. Tasks over MB x NB output blocks ---------------------------------
    const Blocking bl = choose_blocking(m, n, k, kern, threads);
    const int64_t ebytes = g.out_type == LOWBIT_S32 ? 4 : out_elem_bytes(g.out_type);

    parallel_for(bl.m_blocks * bl.n_blocks, threads, [&](int64_t task) {
        const int64_t i0 = (task % bl.m_blocks) * bl.mb, j0 = (task / bl.m_blocks) * bl.nb;
        const int64_t i1 = std::min(m, i0 + bl.mb), j1 = std::min(n, j0 + bl.nb);
        const int64_t nb = j1 - j0;

        // This task's rows of B, as int8.
        const int8_t* b = static_cast<const int8_t*>(g.b) + j0 * g.ldb;
        int64_t ldb = g.ldb;
        if (g.b_type == LOWBIT_S4) {
            int8_t* dst = static_cast<int8_t*>(t_b_scratch.get(nb * unpacked_ld));
            for (int64_t j = 0; j < nb; ++j)
                kern.unpack_s4(static_cast<const uint8_t*>(g.b) + (j0 + j) * (g.ldb / 2), k, dst + j * unpacked_ld);
            b = dst;
            ldb = unpacked_ld;
        }

        int32_t* strip = static_cast<int32_t*>(t_strip_scratch.get(kern.mr * nb * sizeof(int32_t)));
        for (int64_t i = i0; i < i1; i += kern.mr) {
            const int mr = static_cast<int>(std::min<int64_t>(kern.mr, i1 - i));
            for (int64_t j = 0; j < nb; j += kern.nr) {
                const int nr = static_cast<int>(std::min<int64_t>(kern.nr, nb - j));
                kern.tile(a + i * lda, lda, b + j * ldb, ldb, k, mr, nr, strip + j, nb);
            }
            // ---- 3. Epilogue on the strip, one row segment at a time ---------
            for (int r = 0; r < mr; ++r) {
                const int64_t row = i + r;
                EpilogueRow e{0.0f, nullptr, false, nullptr, g.out_type};
                if (g.out_type != LOWBIT_S32) {
                    e.a_scale = g.a_scales[g.a_scale_count == 1 ? 0 : row];
                    e.b_per_column = g.b_scale_count != 1;
                    e.b_scale = e.b_per_column ? g.b_scales + j0 : g.b_scales;
                    e.bias = g.bias ? g.bias + j0 : nullptr;
                }
                epilogue_span(strip + r * nb, nb, correction[row], e,
                              static_cast<char*>(g.out) + (row * g.ldo + j0) * ebytes);
            }
        }
    });
}

}  // namespace cpu
}  // namespace lowbit
