// bitplane_popcnt_avx2.cpp -- the plane-pair kernel with the hardware POPCNT
// instruction (this file is compiled with -mpopcnt as part of the AVX2 level,
// whose detection includes POPCNT; see isa.cpp), 64 bits per instruction.
#include "cpu/bitplane_tile.h"

namespace lowbit {
namespace cpu {

namespace {
void tile(const PlaneOperand& x, const PlaneOperand& w, int64_t kw, int mr, int nr, int64_t* s, int64_t lds) {
    bitplane_tile_portable(x, w, kw, mr, nr, s, lds, [](uint64_t v) { return uint64_t(__builtin_popcountll(v)); });
}
}  // namespace

BitplaneTileFn bitplane_tile_popcnt() { return tile; }

}  // namespace cpu
}  // namespace lowbit
