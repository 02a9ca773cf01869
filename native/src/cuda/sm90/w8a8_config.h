// w8a8_config.h -- the SM90 W8A8 GEMM configurations as seen from the dispatcher: a problem, the
// three entry points of one compiled kernel, and the registry of configurations. Host code only;
// CUTLASS stays inside the sm90/w8a8_*.cu files (compiled for sm_90a alone).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace lowbit {
namespace cuda {
namespace sm90 {

// out[M,N] = epilogue(A[M,K] * B[N,K]^T), A and B S8, out F16 or BF16 (lowbit.h's epilogue).
struct W8A8Problem {
    const void* a;
    int64_t lda;
    const void* b;
    int64_t ldb;
    int64_t m, n, k;
    const float* a_scales;  // 1 or m entries
    int64_t a_scale_count;
    const float* b_scales;  // 1 or n entries
    int64_t b_scale_count;
    const float* bias;      // n entries, or null
    void* out;
    int64_t ldo;            // elements
    int device;
    int sm_count;
};

// One compiled kernel (one configuration, one output type).
struct W8A8Ops {
    bool (*can_implement)(const W8A8Problem&);
    size_t (*workspace_bytes)(const W8A8Problem&);
    // Enqueues the kernel on stream; workspace holds workspace_bytes(p) bytes. Throws lowbit::Error.
    void (*run)(const W8A8Problem&, void* workspace, cudaStream_t stream, const char* name);
};

// One configuration: a tile shape, cluster shape and schedule, for both 16-bit output types.
struct W8A8Config {
    const char* name;  // "<schedule>_<tile M>x<N>x<K>_c<cluster M>x<N>", e.g. "pp_64x128x256_c1x1"
    W8A8Ops f16;
    W8A8Ops bf16;
};

// The registry (w8a8_registry.cu): configurations in a fixed order; the index is what
// lowbit_gemm_dequant_config takes.
int config_count();
const W8A8Config& config(int index);
// Index of the configuration with this name, or -1.
int config_index(const char* name);

// One function per configuration, each defined in its own w8a8_<name>.cu.
W8A8Config config_pp_64x128x256_c1x1();
W8A8Config config_pp_128x128x128_c2x1();
W8A8Config config_coop_128x256x128_c2x1();
W8A8Config config_coop_256x128x128_c2x1();
W8A8Config config_sk_128x128x128_c1x1();

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
