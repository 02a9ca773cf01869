// w8a8_pp_64x128x256_c1x1.cu -- SM90 W8A8 configuration pp_64x128x256_c1x1: Pingpong schedule, tile 64x128x256, cluster 1x1x1
// (see w8a8_kernel.cuh), for F16 and BF16 outputs. One configuration per file, so that the
// CUTLASS instantiations compile in parallel.
#include "w8a8_kernel.cuh"

namespace lowbit {
namespace cuda {
namespace sm90 {

W8A8Config config_pp_64x128x256_c1x1() {
    using Tile = Shape<_64, _128, _256>;
    using Cluster = Shape<_1, _1, _1>;
    return W8A8Config{"pp_64x128x256_c1x1", make_ops<W8A8Gemm<Pingpong, Tile, Cluster, cutlass::half_t>>(),
                      make_ops<W8A8Gemm<Pingpong, Tile, Cluster, cutlass::bfloat16_t>>()};
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
