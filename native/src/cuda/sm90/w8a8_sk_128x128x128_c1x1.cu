// w8a8_sk_128x128x128_c1x1.cu -- SM90 W8A8 configuration sk_128x128x128_c1x1: StreamK schedule, tile 128x128x128, cluster 1x1x1
// (see w8a8_kernel.cuh), for F16 and BF16 outputs. One configuration per file, so that the
// CUTLASS instantiations compile in parallel.
#include "w8a8_kernel.cuh"

namespace lowbit {
namespace cuda {
namespace sm90 {

W8A8Config config_sk_128x128x128_c1x1() {
    using Tile = Shape<_128, _128, _128>;
    using Cluster = Shape<_1, _1, _1>;
    return W8A8Config{"sk_128x128x128_c1x1", make_ops<W8A8Gemm<StreamK, Tile, Cluster, cutlass::half_t>>(),
                      make_ops<W8A8Gemm<StreamK, Tile, Cluster, cutlass::bfloat16_t>>()};
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
