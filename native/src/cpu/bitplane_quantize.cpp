// bitplane_quantize.cpp -- lowbit_bitplane_quantize on the CPU: per-row
// (per-token) quantization to p-bit codes and their bit planes.
//
// Numerics (lowbit.h), IEEE float32, rint = round half to even:
//   asymmetric (unsigned codes), qmax = 2^p - 1:
//     lo = min(0, min x), hi = max(0, max x), scale = (hi - lo) / qmax
//     (1 when 0, FLT_MAX when +Inf), z = clamp(rint(-lo / scale), 0, qmax),
//     q = clamp(rint(x / scale) + z, 0, qmax)
//   symmetric (two's complement), qmax = 2^(p-1) - 1:
//     scale = amax / qmax (1 when 0), q = clamp(rint(x / scale), -qmax, qmax)
// Rows are independent: tasks take chunks of rows, each converts its row to
// float32, checks it, finds the range, and writes scale, zero point, row sum
// and the p planes (padding words zero). Non-finite inputs: every chunk
// records its first one (rows in order), the smallest position is reported,
// and nothing of that call is specified then.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <vector>

#include "cpu/bitplane.h"
#include "cpu/float_convert.h"
#include "cpu/scratch.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr float kFltMax = std::numeric_limits<float>::max();

thread_local Scratch t_row_scratch;  // one row as float32, then its codes

struct Bad {
    int64_t row = INT64_MAX, col = 0;
    float value = 0.0f;
};

// Row r as float32 (F32 rows are used in place).
const float* load_row(const BitplaneQuantizeArgs& a, int64_t r, float* buf) {
    if (a.x_type == LOWBIT_F32) return static_cast<const float*>(a.x) + r * a.ldx;
    const uint16_t* src = static_cast<const uint16_t*>(a.x) + r * a.ldx;
    if (a.x_type == LOWBIT_F16)
        for (int64_t c = 0; c < a.cols; ++c) buf[c] = f16_to_f32(src[c]);
    else
        for (int64_t c = 0; c < a.cols; ++c) buf[c] = bf16_to_f32(src[c]);
    return buf;
}

// Codes of one row into q; writes the row's scale, zero point and sum.
void quantize_row(const BitplaneQuantizeArgs& a, const float* f, int64_t r, int32_t* q) {
    const int64_t n = a.cols;
    int64_t sum = 0;
    if (a.asymmetric) {
        const int qmax = (1 << a.bits) - 1;
        float lo = 0.0f, hi = 0.0f;
        for (int64_t c = 0; c < n; ++c) {
            lo = f[c] < lo ? f[c] : lo;
            hi = f[c] > hi ? f[c] : hi;
        }
        float scale = (hi - lo) / static_cast<float>(qmax);
        if (scale == 0.0f) scale = 1.0f;
        if (!(scale <= kFltMax)) scale = kFltMax;  // hi - lo overflowed
        const float zf = std::min(std::max(std::rint(-lo / scale), 0.0f), static_cast<float>(qmax));
        const int z = static_cast<int>(zf);
        for (int64_t c = 0; c < n; ++c) {
            // |x / scale| <= qmax + 1 here, except for the FLT_MAX / 1 scales (then 0 or tiny).
            float t = std::rint(f[c] / scale);
            t = std::min(std::max(t, -512.0f), 512.0f);
            const int v = std::min(std::max(static_cast<int>(t) + z, 0), qmax);
            q[c] = v;
            sum += v;
        }
        a.scales[r] = scale;
        a.zeros[r] = z;
    } else {
        const int qmax = (1 << (a.bits - 1)) - 1;
        float amax = 0.0f;
        for (int64_t c = 0; c < n; ++c) {
            const float v = std::fabs(f[c]);
            amax = v > amax ? v : amax;
        }
        float scale = amax / static_cast<float>(qmax);
        if (scale == 0.0f) scale = 1.0f;
        const float fq = static_cast<float>(qmax);
        for (int64_t c = 0; c < n; ++c) {
            const float t = std::min(std::max(std::rint(f[c] / scale), -fq), fq);
            const int v = static_cast<int>(t);
            q[c] = v;
            sum += v;
        }
        a.scales[r] = scale;
    }
    a.sums[r] = static_cast<int32_t>(sum);  // |sum| <= K * 255 < 2^31 for K <= 2^23
}

// Plane words of one row of codes (two's complement bits for signed codes).
void pack_row(const int32_t* q, int64_t n, int bits, int64_t ldp, uint64_t* out) {
    const int64_t words = (n + 63) / 64;
    std::memset(out, 0, sizeof(uint64_t) * bits * ldp);
    for (int64_t w = 0; w < words; ++w) {
        const int64_t c0 = w * 64, c1 = std::min(n, c0 + 64);
        for (int i = 0; i < bits; ++i) {
            uint64_t word = 0;
            for (int64_t c = c0; c < c1; ++c)
                word |= static_cast<uint64_t>((static_cast<uint32_t>(q[c]) >> i) & 1u) << (c - c0);
            out[i * ldp + w] = word;
        }
    }
}

}  // namespace

void bitplane_quantize(const BitplaneQuantizeArgs& a, int threads) {
    const int64_t rows_per_task = std::max<int64_t>(1, (int64_t(1) << 15) / a.cols);
    const int64_t tasks = (a.rows + rows_per_task - 1) / rows_per_task;
    std::vector<Bad> bad(tasks);
    parallel_for(tasks, threads, [&](int64_t task) {
        float* buf = static_cast<float*>(t_row_scratch.get(a.cols * (sizeof(float) + sizeof(int32_t))));
        int32_t* q = reinterpret_cast<int32_t*>(buf + a.cols);
        const int64_t r1 = std::min(a.rows, (task + 1) * rows_per_task);
        for (int64_t r = task * rows_per_task; r < r1; ++r) {
            const float* f = load_row(a, r, buf);
            int nf = 0;
            for (int64_t c = 0; c < a.cols; ++c) nf |= !(std::fabs(f[c]) <= kFltMax);
            if (nf) {
                for (int64_t c = 0; c < a.cols; ++c)
                    if (!(std::fabs(f[c]) <= kFltMax)) {
                        bad[task] = Bad{r, c, f[c]};
                        break;
                    }
                return;
            }
            quantize_row(a, f, r, q);
            pack_row(q, a.cols, a.bits, a.ldp, a.planes + r * a.bits * a.ldp);
        }
    });
    for (const Bad& b : bad)
        if (b.row != INT64_MAX) {
            std::ostringstream s;
            s << "input x has a non-finite value (" << (std::isnan(b.value) ? "NaN" : (b.value > 0 ? "+Inf" : "-Inf"))
              << ") at row " << b.row << ", column " << b.col;
            throw Error(LOWBIT_ERR_NONFINITE, s.str());
        }
}

}  // namespace cpu
}  // namespace lowbit
