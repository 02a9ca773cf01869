// dgq_expand_scalar.cpp -- the portable DGQ weight expansion (the reference).
//
// W8 is computed in int and stored as its low 8 bits (two's complement wrap);
// for checked weights (lowbit_dgq_check) that is the value itself.
#include "cpu/dgq_kernels.h"

namespace lowbit {
namespace cpu {

void dgq_expand_span_scalar(int8_t* p, int64_t len, int s2, int z, int asym) {
    for (int64_t c = 0; c < len; ++c) {
        const int q = asym ? (p[c] & 15) : p[c];
        const int v = (q - z) * s2;
        p[c] = static_cast<int8_t>(static_cast<uint8_t>(static_cast<unsigned>(v) & 0xFFu));
    }
}

namespace {

void expand_scalar(int8_t* row, int64_t k, int64_t group, const uint8_t* s2, const int8_t* z) {
    for (int64_t g = 0, c = 0; c < k; ++g, c += group)
        dgq_expand_span_scalar(row + c, group, s2[g], z ? z[g] : 0, z != nullptr);
}

}  // namespace

DgqExpandFn dgq_expand_scalar() { return expand_scalar; }

}  // namespace cpu
}  // namespace lowbit
