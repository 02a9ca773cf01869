// dense_gemm.cpp -- the CPU backend's dense float GEMM: the reference the cuBLAS path is tested
// against (lowbit_dense_gemm).
//
// Every output is one FP64 sum over k in increasing order of the FP32 (or F16/BF16 widened)
// products, plus the old output when accumulating, rounded once to the operand type: the exact
// product up to one final rounding for all but very long K, so a GPU result can be bounded by its
// own FP32 summation error alone. Parallel over blocks of rows; not tuned (the calibration engine
// sends its CPU products to OpenBLAS, the benchmarks time cuBLAS).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/float_convert.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {
namespace {

double load(int dtype, const void* p, int64_t i) {
    switch (dtype) {
        case LOWBIT_F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case LOWBIT_BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
        default: return static_cast<const float*>(p)[i];
    }
}

void store(int dtype, void* p, int64_t i, double v) {
    const float f = static_cast<float>(v);
    switch (dtype) {
        case LOWBIT_F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(f); break;
        case LOWBIT_BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(f); break;
        default: static_cast<float*>(p)[i] = f;
    }
}

}  // namespace

void dense_gemm(const DenseGemmArgs& g, int threads) {
    constexpr int64_t kRowsPerTask = 8;
    const int64_t tasks = (g.m + kRowsPerTask - 1) / kRowsPerTask;
    parallel_for(tasks, threads, [&](int64_t task) {
        std::vector<double> a_row(static_cast<size_t>(g.k));
        std::vector<double> acc(static_cast<size_t>(g.n));
        const int64_t r1 = std::min(g.m, (task + 1) * kRowsPerTask);
        for (int64_t r = task * kRowsPerTask; r < r1; ++r) {
            for (int64_t p = 0; p < g.k; ++p) a_row[p] = load(g.dtype, g.a, r * g.k + p);
            for (int64_t c = 0; c < g.n; ++c) acc[c] = g.accumulate ? load(g.dtype, g.out, r * g.n + c) : 0.0;
            if (g.b_kn) {  // b is K x N: walk its rows, so the inner loop is contiguous
                for (int64_t p = 0; p < g.k; ++p)
                    for (int64_t c = 0; c < g.n; ++c) acc[c] += a_row[p] * load(g.dtype, g.b, p * g.n + c);
            } else {  // b is N x K: one dot product per output
                for (int64_t c = 0; c < g.n; ++c) {
                    double s = 0.0;
                    for (int64_t p = 0; p < g.k; ++p) s += a_row[p] * load(g.dtype, g.b, c * g.k + p);
                    acc[c] += s;
                }
            }
            for (int64_t c = 0; c < g.n; ++c) store(g.dtype, g.out, r * g.n + c, acc[c]);
        }
    });
}

}  // namespace cpu
}  // namespace lowbit
