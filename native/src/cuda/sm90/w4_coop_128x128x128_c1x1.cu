// w4_coop_128x128x128_c1x1.cu -- SM90 fused 4-bit-weight configuration w4_coop_128x128x128_c1x1: Cooperative schedule, tile 128x128x128, cluster 1x1x1
// (tile in the kernel's weights x tokens x K order; see w4_kernel.cuh), every weight format, F16
// and BF16 outputs. One configuration per file, so that the CUTLASS instantiations compile in
// parallel.
#include "w4_kernel.cuh"

namespace lowbit {
namespace cuda {
namespace sm90 {

W4Config w4_config_coop_128x128x128_c1x1() {
    return make_w4_config<W4Cooperative, Shape<_128, _128, _128>, Shape<_1, _1, _1>>("w4_coop_128x128x128_c1x1");
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
