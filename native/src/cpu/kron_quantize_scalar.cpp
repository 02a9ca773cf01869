// kron_quantize_scalar.cpp -- the portable fixed-order FMA matrix product of
// lowbit_kron_quantize (see kron_quantize_matmul.h). std::fma rounds once, as the
// hardware instruction does (glibc picks the FMA instruction at run time when
// the CPU has one, a correctly rounded software path otherwise), so this is
// the reference the AVX-512 kernel must match bit for bit.
#include <cmath>

#include "cpu/kron_quantize_matmul.h"

namespace lowbit {
namespace cpu {

void fma_matmul_scalar(const float* a, const float* b, float* out, int r, int l, int c) {
    for (int i = 0; i < r; ++i) {
        float* o = out + static_cast<int64_t>(i) * c;
        for (int j = 0; j < c; ++j) o[j] = 0.0f;
        // t outermost: each o[j] still sees t = 0, 1, ..., l-1 in order.
        for (int t = 0; t < l; ++t) {
            const float s = a[static_cast<int64_t>(i) * l + t];
            const float* brow = b + static_cast<int64_t>(t) * c;
            for (int j = 0; j < c; ++j) o[j] = std::fma(s, brow[j], o[j]);
        }
    }
}

}  // namespace cpu
}  // namespace lowbit
