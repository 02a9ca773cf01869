// w8a8_registry.cu -- the list of compiled SM90 W8A8 configurations, in the fixed order that the
// C ABI's config indices refer to. Adding a configuration: one w8a8_<name>.cu, one line here.
#include <cstring>

#include "w8a8_config.h"

namespace lowbit {
namespace cuda {
namespace sm90 {
namespace {

struct Registry {
    W8A8Config configs[5];
    Registry()
        : configs{config_pp_64x128x256_c1x1(), config_pp_128x128x128_c2x1(), config_coop_128x256x128_c2x1(),
                  config_coop_256x128x128_c2x1(), config_sk_128x128x128_c1x1()} {}
};

const Registry& registry() {
    static const Registry r;
    return r;
}

}  // namespace

int config_count() { return static_cast<int>(sizeof(Registry::configs) / sizeof(W8A8Config)); }

const W8A8Config& config(int index) { return registry().configs[index]; }

int config_index(const char* name) {
    for (int i = 0; i < config_count(); ++i)
        if (std::strcmp(config(i).name, name) == 0) return i;
    return -1;
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
