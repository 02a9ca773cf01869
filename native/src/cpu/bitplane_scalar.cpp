// bitplane_scalar.cpp -- the portable plane-pair kernel: baseline x86-64 (no
// POPCNT instruction assumed; __builtin_popcountll becomes libgcc's bit
// counting). The reference the faster kernels must match bit for bit.
#include "cpu/bitplane_tile.h"

namespace lowbit {
namespace cpu {

namespace {
void tile(const PlaneOperand& x, const PlaneOperand& w, int64_t kw, int mr, int nr, int64_t* s, int64_t lds) {
    bitplane_tile_portable(x, w, kw, mr, nr, s, lds, [](uint64_t v) { return uint64_t(__builtin_popcountll(v)); });
}
}  // namespace

BitplaneTileFn bitplane_tile_scalar() { return tile; }

}  // namespace cpu
}  // namespace lowbit
