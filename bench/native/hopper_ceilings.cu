// hopper_ceilings.cu -- what this GPU can do at best, measured: the ceilings that the speed targets
// of the CUDA issues are checked against (bench/RESULTS.md, "ceilings").
//
//   1. Tensor-core peaks. Every SM runs warpgroups that issue back-to-back wgmma.mma_async
//      m64n256k{32,16} on operands already in shared memory (random values, so the power drawn
//      is a real GEMM's), accumulating in registers: no global memory, no epilogue, nothing but
//      the MMA. INT8 (s8 x s8 -> s32), FP8 (e4m3 x e4m3 -> f32) and FP16 (f16 x f16 -> f32).
//      No GEMM of either type can run faster on this card at its sustained clocks, so
//      "lowbit's INT8 GEMM >= r x cuBLAS FP16" is out of reach wherever r x (cuBLAS FP16's
//      rate on that shape) is above the INT8 peak measured here.
//   2. The read floor. A kernel that only reads `bytes` once (16-byte non-allocating loads, all of
//      a thread's loads in flight at once, XOR-reduced, one word written per block; the fastest of
//      five grid sizes and three load depths), launched back to back over buffers rotated
//      through >= 512 MB so that L2 never serves them: the least time any kernel needs to
//      read that many weight bytes, launch and drain included. Next to it a device-to-device
//      copy of bytes / 2 (the same bytes moved) and an empty kernel (the launch floor).
//
// Build (nvcc 13, CUTLASS 4.2 headers for CuTe's wgmma wrappers; bench/gpu-run.sh does this):
//   nvcc -std=c++17 -O3 -gencode=arch=compute_90a,code=sm_90a -I$CUTLASS/include \
//        bench/native/hopper_ceilings.cu -o hopper_ceilings
// Run: ./hopper_ceilings [bytes ...]   (read-floor sizes; a default list otherwise)
#include <cuda_runtime.h>

#include <cute/arch/mma_sm90_desc.hpp>
#include <cute/arch/mma_sm90_gmma.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include <vector>

#define CHECK(x)                                                                          \
    do {                                                                                  \
        cudaError_t e_ = (x);                                                             \
        if (e_ != cudaSuccess) {                                                          \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            std::exit(1);                                                                 \
        }                                                                                 \
    } while (0)

namespace {

using namespace cute::SM90::GMMA;

// ---- 1. tensor-core peaks --------------------------------------------------------------------

// Operand tiles in shared memory: A 64 rows x 32 bytes, B 256 rows x 32 bytes, K-major, no
// swizzle (core matrices of 8 rows x 16 bytes, 128 bytes each, stored in order: the two of a row
// group along K are 128 bytes apart (leading byte offset), row groups 256 bytes apart (stride
// byte offset)). The values do not matter to the MMA's speed, only that they are not all zero.
constexpr int kABytes = 64 * 32, kBBytes = 256 * 32;
constexpr int kWgmmaPerBatch = 4;  // wgmmas committed together (a k-tile of 128 for 8-bit types)

__device__ uint64_t smem_desc(const void* p) {
    cute::GmmaDescriptor d;
    d.bitfield.start_address_ = static_cast<uint16_t>(static_cast<unsigned>(__cvta_generic_to_shared(p)) >> 4);
    d.bitfield.leading_byte_offset_ = 128 >> 4;
    d.bitfield.stride_byte_offset_ = 256 >> 4;
    d.bitfield.base_offset_ = 0;
    d.bitfield.layout_type_ = 0;  // interleaved (no swizzle)
    return d.desc_;
}

// The accumulators must stay in registers across the asynchronous wgmmas (CUTLASS's
// warpgroup_fence_operand, per register).
template <class Acc>
__device__ __forceinline__ void warpgroup_fence_operand_all(Acc (&d)[128]) {
#pragma unroll
    for (int i = 0; i < 128; ++i) {
        if constexpr (sizeof(Acc) == 4 && std::is_same<Acc, float>::value)
            asm volatile("" : "+f"(d[i])::"memory");
        else
            asm volatile("" : "+r"(d[i])::"memory");
    }
}

template <class Op, class Acc, size_t... I>
__device__ __forceinline__ void wgmma(uint64_t a, uint64_t b, Acc (&d)[128], std::index_sequence<I...>) {
    Op::fma(a, b, d[I]..., ScaleOut::One);
}

struct Int8Op {
    using Mma = MMA_64x256x32_S32S8S8_SS_TN;
    using Acc = uint32_t;
    static constexpr int kK = 32;
    static constexpr const char* kName = "INT8 s8 x s8 -> s32 (m64n256k32)";
};
struct Fp8Op {
    using Mma = MMA_64x256x32_F32E4M3E4M3_SS_TN<>;
    using Acc = float;
    static constexpr int kK = 32;
    static constexpr const char* kName = "FP8 e4m3 x e4m3 -> f32 (m64n256k32)";
};
struct Fp16Op {
    using Mma = MMA_64x256x16_F32F16F16_SS<Major::K, Major::K>;
    using Acc = float;
    static constexpr int kK = 16;
    static constexpr const char* kName = "FP16 f16 x f16 -> f32 (m64n256k16)";
};

// Random bytes that are valid, moderate values of every type used: 0x00..0x3B as FP8 e4m3 is
// 0 .. 0.4375 in magnitude (no NaN), and pairs of them as FP16 are small normals or subnormals;
// as INT8 they are -59..59 with random signs (bit 7).
__device__ unsigned char random_byte(unsigned i, unsigned salt) {
    unsigned h = (i + 1) * 2654435761u ^ salt * 40503u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return static_cast<unsigned char>((h % 0x3Cu) | (h & 0x80u));
}

template <class T>
__global__ void __launch_bounds__(256, 1) mma_peak(int batches, unsigned* sink) {
    __shared__ __align__(128) unsigned char a[kABytes];
    __shared__ __align__(128) unsigned char b[kBBytes];
    for (int i = threadIdx.x; i < kABytes; i += blockDim.x) a[i] = random_byte(i, 1 + blockIdx.x);
    for (int i = threadIdx.x; i < kBBytes; i += blockDim.x) b[i] = random_byte(i, 7 + blockIdx.x);
    __syncthreads();
    const uint64_t da = smem_desc(a), db = smem_desc(b);
    typename T::Acc d[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) d[i] = 0;
    warpgroup_fence_operand_all(d);
    for (int it = 0; it < batches; ++it) {
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int j = 0; j < kWgmmaPerBatch; ++j) wgmma<typename T::Mma>(da, db, d, std::make_index_sequence<128>{});
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    warpgroup_fence_operand_all(d);
    unsigned x = 0;
#pragma unroll
    for (int i = 0; i < 128; ++i) {
        if constexpr (std::is_same<typename T::Acc, float>::value)
            x ^= __float_as_uint(d[i]);
        else
            x ^= d[i];
    }
    if (x == 0x9E3779B9u) sink[blockIdx.x] = x;  // practically never: keeps the MMAs alive
}

template <class T>
double mma_peak_tops(int sms, int warpgroups, unsigned* sink) {
    const int batches = 4096;
    const dim3 grid(sms), block(128 * warpgroups);
    mma_peak<T><<<grid, block>>>(16, sink);  // warm-up (clocks, code)
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        CHECK(cudaEventRecord(e0));
        mma_peak<T><<<grid, block>>>(batches, sink);
        CHECK(cudaEventRecord(e1));
        CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        CHECK(cudaEventElapsedTime(&ms, e0, e1));
        const double ops = 2.0 * 64 * 256 * T::kK * kWgmmaPerBatch * double(batches) * warpgroups * sms;
        best = std::max(best, ops / (ms * 1e-3) / 1e12);
    }
    CHECK(cudaEventDestroy(e0));
    CHECK(cudaEventDestroy(e1));
    return best;
}

// ---- 2. the read floor -----------------------------------------------------------------------

// Each thread issues all its loads of a round (kLoads 16-byte loads, predicated) before it uses
// any, so a small buffer spread over the whole grid is read with every load in flight at once.
template <int kLoads>
__global__ void __launch_bounds__(256) read_once(const uint4* p, size_t n16, unsigned* sink) {
    unsigned x = 0;
    const size_t stride = size_t(gridDim.x) * blockDim.x;
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n16; i += kLoads * stride) {
        uint4 v[kLoads];
#pragma unroll
        for (int u = 0; u < kLoads; ++u) {
            v[u] = make_uint4(0, 0, 0, 0);
            if (i + u * stride < n16)
                asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                             : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                             : "l"(p + i + u * stride));
        }
#pragma unroll
        for (int u = 0; u < kLoads; ++u) x ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (x == 0x9E3779B9u) sink[blockIdx.x] = x;
}

__global__ void empty_kernel() {}

}  // namespace

int main(int argc, char** argv) {
    int dev = 0, sms = 0;
    CHECK(cudaSetDevice(dev));
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    cudaDeviceProp prop{};
    CHECK(cudaGetDeviceProperties(&prop, dev));
    std::printf("hopper_ceilings on %s (%d SMs)\n\n", prop.name, sms);
    unsigned* sink = nullptr;
    CHECK(cudaMalloc(&sink, 4096 * sizeof(unsigned)));

    std::printf("tensor-core peak, dense, operands in shared memory (best of 5 launches):\n");
    std::printf("%-40s %12s %12s\n", "op", "1 wg/SM", "2 wg/SM");
    auto row = [&](auto tag, const char* name) {
        using T = decltype(tag);
        std::printf("%-40s", name);
        for (int wg = 1; wg <= 2; ++wg) std::printf(" %7.0f TOPS", mma_peak_tops<T>(sms, wg, sink));
        std::printf("\n");
    };
    row(Int8Op{}, Int8Op::kName);
    row(Fp8Op{}, Fp8Op::kName);
    row(Fp16Op{}, Fp16Op::kName);

    std::vector<size_t> sizes;
    for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
    if (sizes.empty()) {
        // Packed weight bytes of the decode targets: 2-bit planes, 4-bit codes, INT8 and FP16 of
        // (K, N) = (4096, 4096), (4096, 14336), (8192, 8192), (8192, 28672).
        const size_t kn[4] = {4096ull * 4096, 4096ull * 14336, 8192ull * 8192, 8192ull * 28672};
        for (size_t v : kn)
            for (size_t num : {1ull, 2ull, 4ull, 8ull}) sizes.push_back(v * num / 4);
        std::sort(sizes.begin(), sizes.end());
        sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
    }
    const size_t pool = size_t(512) << 20;
    std::printf("\nread floor: one read of the bytes, back-to-back launches over buffers rotated through "
                ">= 512 MB (median of 5 x 50 launches)\n");
    std::printf("%14s %12s %12s %12s %14s\n", "bytes", "read us", "read GB/s", "copy us", "copy GB/s r+w");
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    auto timed = [&](auto&& launch) {
        std::vector<float> t;
        for (int i = 0; i < 5; ++i) launch(i);
        CHECK(cudaDeviceSynchronize());
        for (int rep = 0; rep < 5; ++rep) {
            CHECK(cudaEventRecord(e0));
            for (int i = 0; i < 50; ++i) launch(i);
            CHECK(cudaEventRecord(e1));
            CHECK(cudaEventSynchronize(e1));
            float ms = 0;
            CHECK(cudaEventElapsedTime(&ms, e0, e1));
            t.push_back(ms * 1e3f / 50);
        }
        std::sort(t.begin(), t.end());
        return double(t[2]);
    };
    const double empty_us = timed([&](int) { empty_kernel<<<1, 32>>>(); });
    for (size_t bytes : sizes) {
        bytes = (bytes + 255) / 256 * 256;
        const int copies = int(std::max<size_t>(2, pool / bytes + 1));
        std::vector<char*> buf(copies);
        for (auto& b : buf) {
            CHECK(cudaMalloc(&b, bytes));
            CHECK(cudaMemset(b, 0x5A, bytes));
        }
        char* dst = nullptr;
        CHECK(cudaMalloc(&dst, bytes / 2));
        // The fastest of several grids (1 to 16 blocks of 256 threads per SM) and load depths (4, 8
        // or 16 loads in flight per thread): the floor.
        double read_us = 1e30;
        for (int per_sm : {1, 2, 4, 8, 16}) {
            const int blocks = sms * per_sm;
            auto run = [&](auto kernel) {
                read_us = std::min(read_us, timed([&](int i) {
                    kernel<<<blocks, 256>>>(reinterpret_cast<const uint4*>(buf[i % copies]), bytes / 16, sink);
                }));
            };
            run(read_once<4>);
            run(read_once<8>);
            run(read_once<16>);
        }
        const double copy_us = timed([&](int i) {
            CHECK(cudaMemcpyAsync(dst, buf[i % copies], bytes / 2, cudaMemcpyDeviceToDevice));
        });
        std::printf("%14zu %12.2f %12.0f %12.2f %14.0f\n", bytes, read_us, bytes / read_us / 1e3, copy_us,
                    bytes / copy_us / 1e3);
        for (auto b : buf) CHECK(cudaFree(b));
        CHECK(cudaFree(dst));
    }
    std::printf("\nempty kernel, back to back: %.2f us per launch\n", empty_us);
    CHECK(cudaGetLastError());
    return 0;
}
