// dequantize.cpp -- the epilogue alone on an int32 accumulator
// (lowbit_dequantize_s32), in parallel over blocks of rows and columns.
#include <algorithm>
#include <cstdint>

#include "cpu/epilogue.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {

void dequantize(const DequantArgs& d, int threads) {
    // Tasks are row blocks x column blocks of at least kMinElems outputs, so
    // a single long row (M = 1) is still split over the threads.
    const int64_t kMinElems = 16 * 1024;
    const int64_t t = threads <= 0 ? hardware_threads() : threads;
    const int64_t total = d.m * d.n;
    const int64_t per_task = std::max(kMinElems, total / (t * 4));
    const int64_t col_block = std::min(d.n, std::max<int64_t>(64, per_task));
    const int64_t row_block = std::max<int64_t>(1, per_task / col_block);
    const int64_t col_blocks = (d.n + col_block - 1) / col_block;
    const int64_t row_blocks = (d.m + row_block - 1) / row_block;
    const int64_t ebytes = out_elem_bytes(d.out_type);

    parallel_for(row_blocks * col_blocks, threads, [&](int64_t task) {
        const int64_t i0 = (task / col_blocks) * row_block, j0 = (task % col_blocks) * col_block;
        const int64_t i1 = std::min(d.m, i0 + row_block), j1 = std::min(d.n, j0 + col_block);
        for (int64_t i = i0; i < i1; ++i) {
            EpilogueRow e{d.a_scales[d.a_scale_count == 1 ? 0 : i], d.b_scale_count == 1 ? d.b_scales : d.b_scales + j0,
                          d.b_scale_count != 1, d.bias ? d.bias + j0 : nullptr, d.out_type};
            epilogue_span(d.acc + i * d.ldacc + j0, j1 - j0, 0, e,
                          static_cast<char*>(d.out) + (i * d.ldo + j0) * ebytes);
        }
    });
}

}  // namespace cpu
}  // namespace lowbit
