// bitplane_gemm.cpp -- lowbit_bitplane_gemm on the CPU: blocking, threading,
// the zero-point terms and the epilogue around a plane-pair micro-kernel
// (bitplane.h; scalar, POPCNT or AVX-512 VPOPCNTDQ, bit-identical).
//
//   acc[i][j] = S[i][j] - zw[j] * xsum[i] - zx[i] * wsum[j] + K * zx[i] * zw[j]
//   out[i][j] = ((float)acc * x_scale[i]) * w_scale[j] (+ bias[j])
//
// S comes from the micro-kernel in int64 (exact); the correction is added in
// uint64 arithmetic (two's-complement wrap instead of undefined behaviour for
// absurd zero points; exact in the range lowbit.h states). The output is cut
// into MB x NB task blocks as in gemm.cpp (N split further for small M, so a
// single token still uses every thread); inside a task, 2 x 4 tiles of
// int64 S go to a per-thread strip and the epilogue runs on each finished
// row segment.
#include <algorithm>
#include <cstdint>

#include "cpu/bitplane.h"
#include "cpu/float_convert.h"
#include "cpu/scratch.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr int64_t kMinTaskWords = 1 << 16;  // plane-pair words of work below which a task is not worth a thread
constexpr int64_t kTasksPerThread = 3;
constexpr int64_t kWBlockBytes = 256 * 1024;  // planes of one task's w rows, to stay in L2

thread_local Scratch t_strip;  // kBitplaneMr x NB int64

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Plane weights: 2^i, the top plane negative for a signed operand.
void plane_weights(int bits, bool is_signed, int64_t* out) {
    for (int i = 0; i < bits; ++i) out[i] = int64_t(1) << i;
    if (is_signed) out[bits - 1] = -out[bits - 1];
}

struct Blocking {
    int64_t mb, nb, m_blocks, n_blocks;
};

Blocking choose_blocking(const BitplaneGemmArgs& g, int64_t kw, int threads) {
    const int64_t t = threads <= 0 ? hardware_threads() : threads;
    const double work = static_cast<double>(g.m) * g.n * kw * g.x_bits * g.w_bits;
    const int64_t target =
        static_cast<int64_t>(std::max(1.0, std::min(static_cast<double>(t * kTasksPerThread), work / kMinTaskWords)));
    const int64_t m_panels = ceil_div(g.m, kBitplaneMr), n_panels = ceil_div(g.n, kBitplaneNr);
    const int64_t row_bytes = g.w_bits * kw * 8;
    Blocking b;
    const int64_t nb_l2 = std::max<int64_t>(kBitplaneNr, kWBlockBytes / row_bytes / kBitplaneNr * kBitplaneNr);
    b.nb = std::min(n_panels * kBitplaneNr, nb_l2);
    b.n_blocks = ceil_div(g.n, b.nb);
    const int64_t want_m = std::min(m_panels, ceil_div(target, b.n_blocks));
    b.mb = ceil_div(m_panels, want_m) * kBitplaneMr;
    b.m_blocks = ceil_div(g.m, b.mb);
    if (b.m_blocks * b.n_blocks < target) {
        const int64_t want_n = std::min(n_panels, std::max(b.n_blocks, ceil_div(target, b.m_blocks)));
        b.nb = ceil_div(n_panels, want_n) * kBitplaneNr;
        b.n_blocks = ceil_div(g.n, b.nb);
    }
    return b;
}

template <int OUT>
void store_row(const BitplaneGemmArgs& g, int64_t i, int64_t j0, int64_t nb, const int64_t* s) {
    const uint64_t zx = g.x_zeros ? static_cast<uint64_t>(static_cast<int64_t>(g.x_zeros[i])) : 0;
    const uint64_t xsum = g.w_zeros ? static_cast<uint64_t>(static_cast<int64_t>(g.x_sums[i])) : 0;
    const uint64_t k = static_cast<uint64_t>(g.k);
    float as = 0.0f;
    if (OUT != LOWBIT_S32) as = g.x_scales[g.x_scale_count == 1 ? 0 : i];
    for (int64_t c = 0; c < nb; ++c) {
        const int64_t j = j0 + c;
        uint64_t acc = static_cast<uint64_t>(s[c]);
        if (g.w_zeros) {
            const uint64_t zw = static_cast<uint64_t>(static_cast<int64_t>(g.w_zeros[j]));
            acc -= zw * xsum;
            acc += k * zx * zw;
        }
        if (g.x_zeros) acc -= zx * static_cast<uint64_t>(static_cast<int64_t>(g.w_sums[j]));
        const int64_t a = static_cast<int64_t>(acc);
        const int64_t idx = i * g.ldo + j;
        if (OUT == LOWBIT_S32) {
            static_cast<int32_t*>(g.out)[idx] = static_cast<int32_t>(static_cast<uint32_t>(acc));
            continue;
        }
        float v = static_cast<float>(a) * as;
        v = v * g.w_scales[g.w_scale_count == 1 ? 0 : j];
        if (g.bias) v = v + g.bias[j];
        if (OUT == LOWBIT_F32) static_cast<float*>(g.out)[idx] = v;
        if (OUT == LOWBIT_F16) static_cast<uint16_t*>(g.out)[idx] = f32_to_f16(v);
        if (OUT == LOWBIT_BF16) static_cast<uint16_t*>(g.out)[idx] = f32_to_bf16(v);
    }
}

void epilogue_row(const BitplaneGemmArgs& g, int64_t i, int64_t j0, int64_t nb, const int64_t* s) {
    switch (g.out_type) {
        case LOWBIT_S32: store_row<LOWBIT_S32>(g, i, j0, nb, s); break;
        case LOWBIT_F32: store_row<LOWBIT_F32>(g, i, j0, nb, s); break;
        case LOWBIT_F16: store_row<LOWBIT_F16>(g, i, j0, nb, s); break;
        default: store_row<LOWBIT_BF16>(g, i, j0, nb, s); break;
    }
}

}  // namespace

void bitplane_gemm(const BitplaneGemmArgs& g, int isa, int threads) {
    const BitplaneTileFn tile = select_bitplane_tile(isa);
    const int64_t kw = (g.k + 63) / 64;
    int64_t xw[8], ww[8];
    plane_weights(g.x_bits, g.x_signed, xw);
    plane_weights(g.w_bits, g.w_signed, ww);
    const int64_t xstride = g.x_bits * g.ldx, wstride = g.w_bits * g.ldw;
    const Blocking bl = choose_blocking(g, kw, threads);

    parallel_for(bl.m_blocks * bl.n_blocks, threads, [&](int64_t task) {
        const int64_t i0 = (task % bl.m_blocks) * bl.mb, j0 = (task / bl.m_blocks) * bl.nb;
        const int64_t i1 = std::min(g.m, i0 + bl.mb), j1 = std::min(g.n, j0 + bl.nb);
        const int64_t nb = j1 - j0;
        int64_t* strip = static_cast<int64_t*>(t_strip.get(kBitplaneMr * nb * sizeof(int64_t)));
        for (int64_t i = i0; i < i1; i += kBitplaneMr) {
            const int mr = static_cast<int>(std::min<int64_t>(kBitplaneMr, i1 - i));
            const PlaneOperand x{g.x + i * xstride, xstride, g.ldx, g.x_bits, xw};
            for (int64_t j = 0; j < nb; j += kBitplaneNr) {
                const int nr = static_cast<int>(std::min<int64_t>(kBitplaneNr, nb - j));
                const PlaneOperand w{g.w + (j0 + j) * wstride, wstride, g.ldw, g.w_bits, ww};
                tile(x, w, kw, mr, nr, strip + j, nb);
            }
            for (int r = 0; r < mr; ++r) epilogue_row(g, i + r, j0, nb, strip + r * nb);
        }
    });
}

}  // namespace cpu
}  // namespace lowbit
