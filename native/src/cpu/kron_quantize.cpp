// kron_quantize.cpp -- lowbit_kron_quantize on the CPU backend: FlatQuant's
// online transform y = x * (P1 (x) P2) fused with per-token quantization.
//
// Per row (rows split into chunks over the thread pool; per-chunk scratch):
//   1. x's row as float32 (F16/BF16 converted exactly); a NaN/Inf stops the
//      chunk with the row's first bad column of x;
//   2. U = P1^T * X, then Y = U * P2 (two fixed-order FMA products,
//      kron_quantize.h; P1^T is built once per call);
//   3. min / max of y (a NaN/Inf stops the chunk with y's first bad column);
//      amax = max(|clip_max * max y|, |clip_min * min y|), scale = amax / qmax;
//   4. codes clamp(rint(y / scale), -qmax, qmax), written as S8 or packed S4.
// Chunks are in row order and stop at their first bad row, so the smallest
// (row, kind, column) over all chunks is the first finding in lowbit.h's
// order: the report does not depend on the thread count.
#include "cpu/kron_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <vector>

#include "cpu/float_convert.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr float kFltMax = std::numeric_limits<float>::max();

// A non-finite finding: in x (in_y false) or, for a finite x row, in y.
struct Finding {
    int64_t row = INT64_MAX;
    bool in_y = false;
    int64_t col = 0;
    float value = 0.0f;
    bool found() const { return row != INT64_MAX; }
    bool before(const Finding& o) const {
        if (row != o.row) return row < o.row;
        if (in_y != o.in_y) return !in_y;
        return col < o.col;
    }
};

const char* nonfinite_name(float v) { return std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"); }

[[noreturn]] void throw_finding(const Finding& f) {
    std::ostringstream s;
    if (!f.in_y) {
        s << "input x has a non-finite value (" << nonfinite_name(f.value) << ") at row " << f.row << ", column "
          << f.col;
    } else {
        s << "the transformed row y = x * (P1 (x) P2) has a non-finite value (" << nonfinite_name(f.value)
          << ") at row " << f.row << ", column " << f.col
          << " although x's row is finite: p1 or p2 holds a non-finite entry, or the products overflow float32";
    }
    throw Error(LOWBIT_ERR_NONFINITE, s.str());
}

// First non-finite element of f[0, n), or -1.
int64_t first_nonfinite(const float* f, int64_t n) {
    int any = 0;
    for (int64_t c = 0; c < n; ++c) any |= !(std::fabs(f[c]) <= kFltMax);
    if (!any) return -1;
    for (int64_t c = 0; c < n; ++c)
        if (!(std::fabs(f[c]) <= kFltMax)) return c;
    return -1;
}

// q = clamp(rint(y / scale), -qmax, qmax) as lowbit_quantize computes it:
// true division, clamp, then the magic-number round to nearest even (exact
// for |v| <= 2^22, and |v| <= 127 here).
void quantize_codes(const float* y, int64_t n, float scale, float qmax, int8_t* q) {
    const float magic = 12582912.0f;  // 1.5 * 2^23
    for (int64_t c = 0; c < n; ++c) {
        float v = y[c] / scale;
        v = v < -qmax ? -qmax : v;
        v = v > qmax ? qmax : v;
        v = (v + magic) - magic;
        q[c] = static_cast<int8_t>(static_cast<int>(v));
    }
}

// Two codes per byte: element c in byte c/2, low nibble when c is even; an
// odd n leaves the last high nibble 0.
void pack_s4(const int8_t* v, int64_t n, uint8_t* out) {
    const int64_t pairs = n / 2;
    for (int64_t p = 0; p < pairs; ++p)
        out[p] = static_cast<uint8_t>((v[2 * p] & 0x0F) | ((v[2 * p + 1] & 0x0F) << 4));
    if (n & 1) out[pairs] = static_cast<uint8_t>(v[n - 1] & 0x0F);
}

}  // namespace

void kron_quantize(const KronQuantizeArgs& a, int isa, int threads) {
    const int n1 = a.n1, n2 = a.n2;
    const int64_t n = static_cast<int64_t>(n1) * n2;
    const float qmax = a.bits == 8 ? 127.0f : 7.0f;
    const FmaMatmulFn matmul = isa >= LOWBIT_ISA_AVX512_VNNI ? fma_matmul_avx512 : fma_matmul_scalar;

    // P1^T (p1t[i][k] = P1[k][i]): the first product reads it row by row.
    std::vector<float> p1t(static_cast<size_t>(n1) * n1);
    for (int k = 0; k < n1; ++k)
        for (int i = 0; i < n1; ++i) p1t[static_cast<size_t>(i) * n1 + k] = a.p1[static_cast<size_t>(k) * n1 + i];

    // Chunks of rows: about 2^18 FMAs at least per chunk, at most 4 per thread.
    const int64_t t = threads <= 0 ? hardware_threads() : threads;
    const int64_t fmas_per_row = n * (n1 + n2);
    const int64_t by_work = std::max<int64_t>(1, a.rows * fmas_per_row / (int64_t(1) << 18));
    int64_t n_chunks = std::min({a.rows, t * 4, by_work});
    const int64_t per_chunk = (a.rows + n_chunks - 1) / n_chunks;
    n_chunks = (a.rows + per_chunk - 1) / per_chunk;
    std::vector<Finding> bad(n_chunks);

    parallel_for(n_chunks, threads, [&](int64_t ch) {
        std::vector<float> xbuf(a.x_type == LOWBIT_F32 ? 0 : n), u(n), y(n);
        std::vector<int8_t> codes(n);
        const int64_t r_end = std::min(a.rows, (ch + 1) * per_chunk);
        for (int64_t r = ch * per_chunk; r < r_end; ++r) {
            // 1. x's row as float32.
            const float* x;
            if (a.x_type == LOWBIT_F32) {
                x = static_cast<const float*>(a.x) + r * a.ldx;
            } else {
                const uint16_t* src = static_cast<const uint16_t*>(a.x) + r * a.ldx;
                if (a.x_type == LOWBIT_F16)
                    for (int64_t c = 0; c < n; ++c) xbuf[c] = f16_to_f32(src[c]);
                else
                    for (int64_t c = 0; c < n; ++c) xbuf[c] = bf16_to_f32(src[c]);
                x = xbuf.data();
            }
            const int64_t bad_x = first_nonfinite(x, n);
            if (bad_x >= 0) {
                bad[ch] = Finding{r, false, bad_x, x[bad_x]};
                return;
            }
            // 2. Y = P1^T * X * P2.
            matmul(p1t.data(), x, u.data(), n1, n1, n2);
            matmul(u.data(), a.p2, y.data(), n1, n2, n2);
            // 3. Range, clipped amax and scale.
            const int64_t bad_y = first_nonfinite(y.data(), n);
            if (bad_y >= 0) {
                bad[ch] = Finding{r, true, bad_y, y[bad_y]};
                return;
            }
            float hi = y[0], lo = y[0];
            for (int64_t c = 1; c < n; ++c) {
                hi = y[c] > hi ? y[c] : hi;
                lo = y[c] < lo ? y[c] : lo;
            }
            const float amax = std::max(std::fabs(a.clip_max * hi), std::fabs(a.clip_min * lo));
            float scale = amax / qmax;
            scale = scale == 0.0f ? 1.0f : scale;
            a.scales[r] = scale;
            // 4. Codes.
            if (a.bits == 8) {
                quantize_codes(y.data(), n, scale, qmax, static_cast<int8_t*>(a.q) + r * a.ldq);
            } else {
                quantize_codes(y.data(), n, scale, qmax, codes.data());
                pack_s4(codes.data(), n, static_cast<uint8_t*>(a.q) + r * (a.ldq / 2));
            }
        }
    });
    Finding first;
    for (const Finding& f : bad)
        if (f.before(first)) first = f;
    if (first.found()) throw_finding(first);
}

}  // namespace cpu
}  // namespace lowbit
