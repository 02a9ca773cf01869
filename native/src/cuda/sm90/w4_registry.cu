// w4_registry.cu -- the list of compiled SM90 fused 4-bit-weight configurations. Adding one: a
// w4_<name>.cu, its declaration in w4_config.h, one entry here.
#include <cstring>

#include "w4_config.h"

namespace lowbit {
namespace cuda {
namespace sm90 {
namespace {

struct W4Registry {
    W4Config configs[3];
    W4Registry()
        : configs{w4_config_pp_64x128x128_c1x1(), w4_config_coop_128x128x128_c1x1(), w4_config_coop_128x256x128_c2x1()} {}
};

const W4Registry& w4_registry() {
    static const W4Registry r;
    return r;
}

}  // namespace

int w4_config_count() { return static_cast<int>(sizeof(W4Registry::configs) / sizeof(W4Config)); }

const W4Config& w4_config(int index) { return w4_registry().configs[index]; }

int w4_config_index(const char* name) {
    for (int i = 0; i < w4_config_count(); ++i)
        if (std::strcmp(w4_config(i).name, name) == 0) return i;
    return -1;
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
