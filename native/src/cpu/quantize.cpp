// quantize.cpp -- symmetric INT8 / INT4 quantization (lowbit_quantize).
//
//   scale = amax / qmax            (qmax = 127 or 7; 1 when that is 0)
//   q     = clamp(rint(x / scale), -qmax, qmax)      IEEE float32, ties to even
//
// Structure: every pass works on whole rows, in parallel over chunks of rows.
//   * per-row / per-group, computed scales: one pass; each row finds its amax
//     values, writes its scales and quantizes itself.
//   * per-tensor / per-column, computed scales: pass 1 computes partial maxima
//     per row chunk (1 or cols values each), they are reduced, the scales
//     written, then pass 2 quantizes.
//   * given scales: the scales are checked first, then one quantize pass.
// Non-finite inputs are found in the amax pass (the quantize pass for given
// scales). Each chunk stops at its first bad row, the chunks are in row order,
// so the smallest (row, column) over all chunks is the first bad element in
// row-major order: the report is deterministic.
//
// The loops are plain C++ that the compiler vectorizes; the operation is
// memory-bound.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include "cpu/float_convert.h"
#include "cpu/ops.h"
#include "cpu/thread_pool.h"

namespace lowbit {
namespace cpu {

namespace {

constexpr float kFltMax = std::numeric_limits<float>::max();

// Position of a non-finite input; row == INT64_MAX means none.
struct BadPos {
    int64_t row = INT64_MAX;
    int64_t col = 0;
    float value = 0.0f;
    bool found() const { return row != INT64_MAX; }
    bool before(const BadPos& o) const { return row < o.row || (row == o.row && col < o.col); }
};

[[noreturn]] void throw_nonfinite(const BadPos& b) {
    std::ostringstream s;
    s << "input x has a non-finite value (" << (std::isnan(b.value) ? "NaN" : (b.value > 0 ? "+Inf" : "-Inf"))
      << ") at row " << b.row << ", column " << b.col;
    throw Error(LOWBIT_ERR_NONFINITE, s.str());
}

// Row r of x as float32: F32 rows are used in place, F16/BF16 rows are
// converted into src_buf (src_cols floats). With a flatten plan the row is then
// expanded into buf (cols floats): buf[j] = x[r][src_index[j]] * src_mult[j].
const float* row_as_float(const QuantizeArgs& a, int64_t r, float* buf, float* src_buf) {
    const int64_t n = a.src_index != nullptr ? a.src_cols : a.cols;
    const float* row;
    if (a.x_type == LOWBIT_F32) {
        row = static_cast<const float*>(a.x) + r * a.ldx;
    } else {
        float* out = a.src_index != nullptr ? src_buf : buf;
        const uint16_t* src = static_cast<const uint16_t*>(a.x) + r * a.ldx;
        if (a.x_type == LOWBIT_F16)
            for (int64_t c = 0; c < n; ++c) out[c] = f16_to_f32(src[c]);
        else
            for (int64_t c = 0; c < n; ++c) out[c] = bf16_to_f32(src[c]);
        row = out;
    }
    if (a.src_index == nullptr) return row;
    for (int64_t j = 0; j < a.cols; ++j) buf[j] = row[a.src_index[j]] * a.src_mult[j];
    return buf;
}

// A flatten plan must index inside the row and scale by finite values.
void check_plan(const QuantizeArgs& a) {
    for (int64_t j = 0; j < a.cols; ++j) {
        int32_t i = a.src_index[j];
        float m = a.src_mult[j];
        if (i < 0 || i >= a.src_cols || !(std::fabs(m) <= std::numeric_limits<float>::max())) {
            std::ostringstream s;
            s << "flatten plan entry " << j << " (source column " << i << ", multiplier " << m
              << ") is invalid: the source column must be in [0, " << a.src_cols << ") and the multiplier finite";
            throw Error(LOWBIT_ERR_INVALID_ARGUMENT, s.str());
        }
    }
}

// max |f[c]| over [0, n); sets *bad when a value is NaN or +-Inf. Eight
// independent lanes so the compiler can vectorize the max reduction.
float amax_span(const float* f, int64_t n, bool* bad) {
    float m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
        for (int l = 0; l < 8; ++l) {
            float v = std::fabs(f[c + l]);
            m[l] = v > m[l] ? v : m[l];
            nf[l] |= !(v <= kFltMax);
        }
    for (; c < n; ++c) {
        float v = std::fabs(f[c]);
        m[0] = v > m[0] ? v : m[0];
        nf[0] |= !(v <= kFltMax);
    }
    float r = 0.0f;
    int any = 0;
    for (int l = 0; l < 8; ++l) {
        r = m[l] > r ? m[l] : r;
        any |= nf[l];
    }
    if (any) *bad = true;
    return r;
}

// Records the first non-finite element of row r (known to hold one).
void find_bad(const float* f, int64_t cols, int64_t r, BadPos* bad) {
    for (int64_t c = 0; c < cols; ++c)
        if (!(std::fabs(f[c]) <= kFltMax)) {
            BadPos b{r, c, f[c]};
            if (b.before(*bad)) *bad = b;
            return;
        }
}

bool all_finite(const float* f, int64_t n) {
    int nf = 0;
    for (int64_t c = 0; c < n; ++c) nf |= !(std::fabs(f[c]) <= kFltMax);
    return nf == 0;
}

// amax / qmax, or 1 when that is 0 (amax == 0, or a denormal amax whose quotient underflows).
inline float scale_from_amax(float amax, float qmax) {
    float s = amax / qmax;
    return s == 0.0f ? 1.0f : s;
}

// q[c] = clamp(rint(f[c] / scale[c]), -qmax, qmax); scale is one value
// (stride 0) or one per element (stride 1). Division, not multiplication by
// the reciprocal, as lowbit.h defines it. The rounding is the classic
// magic-number trick: for |v| <= 2^22, (v + 1.5*2^23) - 1.5*2^23 is v rounded
// to nearest even, exactly. NaN (only possible as 0/0 when a computed scale
// underflowed to 0) is mapped to 0.
template <int STRIDE>
void quantize_span(const float* f, int64_t n, const float* scale, float qmax, int8_t* q) {
    const float magic = 12582912.0f;  // 1.5 * 2^23
    for (int64_t c = 0; c < n; ++c) {
        float v = f[c] / scale[STRIDE * c];
        v = v == v ? v : 0.0f;
        v = v < -qmax ? -qmax : v;
        v = v > qmax ? qmax : v;
        v = (v + magic) - magic;
        q[c] = static_cast<int8_t>(static_cast<int>(v));
    }
}

// Packs a row of int8 values in [-8, 7] two per byte: element c in byte c/2,
// low nibble when c is even. An odd row length leaves the last high nibble 0.
void pack_s4(const int8_t* v, int64_t n, uint8_t* out) {
    int64_t pairs = n / 2;
    for (int64_t p = 0; p < pairs; ++p)
        out[p] = static_cast<uint8_t>((v[2 * p] & 0x0F) | ((v[2 * p + 1] & 0x0F) << 4));
    if (n & 1) out[pairs] = static_cast<uint8_t>(v[n - 1] & 0x0F);
}

// Quantizes one row with its scales (slot layout by granularity) and writes it.
void quantize_row(const QuantizeArgs& a, int64_t r, const float* f, int8_t* tmp) {
    const float qmax = a.bits == 8 ? 127.0f : 7.0f;
    int8_t* q = a.bits == 8 ? static_cast<int8_t*>(a.q) + r * a.ldq : tmp;
    switch (a.granularity) {
        case LOWBIT_PER_TENSOR: quantize_span<0>(f, a.cols, a.scales, qmax, q); break;
        case LOWBIT_PER_ROW: quantize_span<0>(f, a.cols, a.scales + r, qmax, q); break;
        case LOWBIT_PER_COLUMN: quantize_span<1>(f, a.cols, a.scales, qmax, q); break;
        default: {  // per group
            const int64_t groups = a.cols / a.group;
            const float* s = a.scales + r * groups;
            for (int64_t g = 0; g < groups; ++g)
                quantize_span<0>(f + g * a.group, a.group, s + g, qmax, q + g * a.group);
        }
    }
    if (a.bits == 4) pack_s4(tmp, a.cols, static_cast<uint8_t*>(a.q) + r * (a.ldq / 2));
}

// Splits rows into chunks for the thread pool; small inputs get one chunk.
struct RowChunks {
    int64_t n_chunks, rows_per_chunk;
    RowChunks(int64_t rows, int64_t cols, int threads) {
        const int64_t kMinElems = 32 * 1024;  // below this, threading costs more than it saves
        int64_t t = threads <= 0 ? hardware_threads() : threads;
        int64_t by_work = std::max<int64_t>(1, rows * cols / kMinElems);
        n_chunks = std::min({rows, t * 4, by_work});
        rows_per_chunk = (rows + n_chunks - 1) / n_chunks;
        n_chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
    }
    int64_t begin(int64_t c) const { return c * rows_per_chunk; }
    int64_t end(int64_t c, int64_t rows) const { return std::min(rows, (c + 1) * rows_per_chunk); }
};

BadPos first_bad(const std::vector<BadPos>& v) {
    BadPos b;
    for (const BadPos& x : v)
        if (x.before(b)) b = x;
    return b;
}

void check_given_scales(const QuantizeArgs& a) {
    int64_t n = 1;
    switch (a.granularity) {
        case LOWBIT_PER_ROW: n = a.rows; break;
        case LOWBIT_PER_COLUMN: n = a.cols; break;
        case LOWBIT_PER_GROUP: n = a.rows * (a.cols / a.group); break;
        default: break;
    }
    for (int64_t i = 0; i < n; ++i) {
        float s = a.scales[i];
        if (!(s > 0.0f && s <= kFltMax)) {
            std::ostringstream m;
            m << "given scale at index " << i << " is " << s << "; every scale must be finite and > 0";
            throw Error(LOWBIT_ERR_INVALID_ARGUMENT, m.str());
        }
    }
}

}  // namespace

void quantize(const QuantizeArgs& a, int threads) {
    const RowChunks chunks(a.rows, a.cols, threads);
    const float qmax = a.bits == 8 ? 127.0f : 7.0f;
    std::vector<BadPos> bad(chunks.n_chunks);
    if (a.src_index != nullptr) check_plan(a);
    // Positions of non-finite values are reported in x's own columns.
    auto report = [&](const BadPos& b) {
        BadPos s = b;
        if (a.src_index != nullptr) s.col = a.src_index[b.col];
        throw_nonfinite(s);
    };

    // Per-chunk scratch: a float row (F16/BF16 input) and an int8 row (S4).
    auto with_scratch = [&](auto&& body) {
        return [&, body](int64_t chunk) {
            const bool flat = a.src_index != nullptr;
            std::vector<float> fbuf(a.x_type == LOWBIT_F32 && !flat ? 0 : a.cols);
            std::vector<float> sbuf(a.x_type != LOWBIT_F32 && flat ? a.src_cols : 0);
            std::vector<int8_t> qbuf(a.bits == 4 ? a.cols : 0);
            body(chunk, fbuf.data(), sbuf.data(), qbuf.data());
        };
    };

    if (a.scales_given) {
        check_given_scales(a);
    } else if (a.granularity == LOWBIT_PER_ROW || a.granularity == LOWBIT_PER_GROUP) {
        // One pass: amax, scales and quantization row by row.
        parallel_for(chunks.n_chunks, threads, with_scratch([&](int64_t ch, float* fbuf, float* sbuf, int8_t* qbuf) {
            for (int64_t r = chunks.begin(ch); r < chunks.end(ch, a.rows); ++r) {
                const float* f = row_as_float(a, r, fbuf, sbuf);
                bool nonfinite = false;
                if (a.granularity == LOWBIT_PER_ROW) {
                    a.scales[r] = scale_from_amax(amax_span(f, a.cols, &nonfinite), qmax);
                } else {
                    const int64_t groups = a.cols / a.group;
                    for (int64_t g = 0; g < groups; ++g)
                        a.scales[r * groups + g] =
                            scale_from_amax(amax_span(f + g * a.group, a.group, &nonfinite), qmax);
                }
                if (nonfinite) {
                    find_bad(f, a.cols, r, &bad[ch]);
                    return;
                }
                quantize_row(a, r, f, qbuf);
            }
        }));
        BadPos b = first_bad(bad);
        if (b.found()) report(b);
        return;
    } else {
        // Pass 1: partial maxima per chunk (1 slot per tensor, cols per column).
        const int64_t slots = a.granularity == LOWBIT_PER_TENSOR ? 1 : a.cols;
        std::vector<float> partial(chunks.n_chunks * slots, 0.0f);
        parallel_for(chunks.n_chunks, threads, with_scratch([&](int64_t ch, float* fbuf, float* sbuf, int8_t*) {
            float* m = partial.data() + ch * slots;
            for (int64_t r = chunks.begin(ch); r < chunks.end(ch, a.rows); ++r) {
                const float* f = row_as_float(a, r, fbuf, sbuf);
                bool nonfinite = false;
                if (slots == 1) {
                    float v = amax_span(f, a.cols, &nonfinite);
                    m[0] = v > m[0] ? v : m[0];
                } else {
                    int nf = 0;
                    for (int64_t c = 0; c < a.cols; ++c) {
                        float v = std::fabs(f[c]);
                        m[c] = v > m[c] ? v : m[c];
                        nf |= !(v <= kFltMax);
                    }
                    nonfinite = nf != 0;
                }
                if (nonfinite) {
                    find_bad(f, a.cols, r, &bad[ch]);
                    return;
                }
            }
        }));
        BadPos b = first_bad(bad);
        if (b.found()) report(b);
        for (int64_t s = 0; s < slots; ++s) {
            float m = 0.0f;
            for (int64_t ch = 0; ch < chunks.n_chunks; ++ch) m = std::max(m, partial[ch * slots + s]);
            a.scales[s] = scale_from_amax(m, qmax);
        }
    }

    // Quantize pass (given scales, or per-tensor / per-column after pass 1).
    const bool check = a.scales_given;  // computed scales: x was checked in pass 1
    parallel_for(chunks.n_chunks, threads, with_scratch([&](int64_t ch, float* fbuf, float* sbuf, int8_t* qbuf) {
        for (int64_t r = chunks.begin(ch); r < chunks.end(ch, a.rows); ++r) {
            const float* f = row_as_float(a, r, fbuf, sbuf);
            if (check && !all_finite(f, a.cols)) {
                find_bad(f, a.cols, r, &bad[ch]);
                return;
            }
            quantize_row(a, r, f, qbuf);
        }
    }));
    BadPos b = first_bad(bad);
    if (b.found()) report(b);
}

}  // namespace cpu
}  // namespace lowbit
