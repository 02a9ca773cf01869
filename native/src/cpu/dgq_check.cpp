// dgq_check.cpp -- lowbit_dgq_check on host data: every group scale >= 1 and
// every expanded weight |W8| = |(q - z) * S2| <= 127.
//
// Per group it first finds the smallest and largest code (one pass over the
// nibbles), then checks the two extremes; only a failing group is scanned
// again to name the first offending column.
#include <cstdint>
#include <sstream>

#include "backend.h"

namespace lowbit {

namespace {

int code_at(const uint8_t* row, int64_t c, bool asym) {
    const int nib = (c & 1) ? (row[c / 2] >> 4) : (row[c / 2] & 0x0F);
    return asym ? nib : ((nib ^ 8) - 8);
}

}  // namespace

void dgq_check_host(const uint8_t* w, int64_t ldw, const uint8_t* group_scales, const int8_t* zero_points,
                    int64_t group, int64_t n, int64_t k) {
    const int64_t groups = k / group;
    const bool asym = zero_points != nullptr;
    for (int64_t r = 0; r < n; ++r) {
        const uint8_t* row = w + r * (ldw / 2);
        for (int64_t g = 0; g < groups; ++g) {
            const int s2 = group_scales[r * groups + g];
            const int z = asym ? zero_points[r * groups + g] : 0;
            const int64_t c0 = g * group, c1 = c0 + group;
            if (s2 == 0) {
                std::ostringstream s;
                s << "row " << r << ", group " << g << " (columns " << c0 << ".." << c1 - 1
                  << "): group scale is 0, it must be >= 1";
                throw Error(LOWBIT_ERR_INVALID_ARGUMENT, s.str());
            }
            int lo = 127, hi = -128;
            for (int64_t c = c0; c < c1; ++c) {
                const int q = code_at(row, c, asym);
                lo = q < lo ? q : lo;
                hi = q > hi ? q : hi;
            }
            const int vlo = (lo - z) * s2, vhi = (hi - z) * s2;
            if (vlo >= -127 && vlo <= 127 && vhi >= -127 && vhi <= 127) continue;
            for (int64_t c = c0; c < c1; ++c) {
                const int q = code_at(row, c, asym);
                const int v = (q - z) * s2;
                if (v < -127 || v > 127) {
                    std::ostringstream s;
                    s << "row " << r << ", group " << g << ", column " << c << ": " << (asym ? "unsigned" : "signed")
                      << " code " << q;
                    if (asym) s << " with zero point " << z;
                    s << " and group scale " << s2 << " give W8 = " << v << ", outside [-127, 127]";
                    throw Error(LOWBIT_ERR_INVALID_ARGUMENT, s.str());
                }
            }
        }
    }
}

}  // namespace lowbit
