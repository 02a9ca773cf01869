// quantize_tensor_dynamic.cu -- PER_TENSOR quantization with a computed
// (dynamic) scale in ONE kernel: a cooperative, persistent grid.
//
// The general path (quantize_amax.cu + quantize_apply.cu) takes four
// stream-ordered steps -- memset, amax kernel with atomicMax, finalize kernel,
// apply kernel -- and reads x twice from DRAM. Here one launch does it all:
//
//   phase 1  The tensor is seen as one sequence of units of 8 columns (16-byte
//            loads; 32 bytes for F32), rows one after the other. Block b owns
//            the contiguous units [begin_b, end_b); thread t of the block takes
//            units begin_b + t, + blockDim, + 2 blockDim, ... (coalesced, up to
//            64 bytes of loads in flight per thread), reduces max|x| over them,
//            and the block writes ONE partial maximum to partials[b]. Every slot
//            0 .. gridDim-1 is written by every launch: no memset, no atomics.
//   barrier  cooperative_groups::this_grid().sync(): after it every partial is
//            visible to every block.
//   scale    every block reduces all gridDim partials itself (fmaxf is exact and
//            order-free, so every block gets the same amax) and computes
//            scale = scale_from_amax(amax, qmax); block 0 writes scales[0].
//   phase 2  every thread quantizes the same units it read in phase 1, walking
//            them in REVERSE order: the units read last are the likeliest to
//            still be in L2 (50 MB on the H100), so a tensor that fits is read
//            from DRAM once, and a larger one re-reads only what L2 lost (its
//            first part). quantize_store8 with the scale, as every other
//            quantize kernel: q and the scale are bit-identical to the CPU
//            backend and to the four-step path (whose atomicMax on the bit
//            patterns of non-negative floats is the same maximum).
//
// Findings: NaN/Inf inputs are recorded as quantize_apply does -- each thread
// keeps its smallest key ((row * cols + col) << 2 | class) and record_finding
// merges them into the smallest one of the operation (device_status.cuh). A
// thread walks its units backward, so it takes the minimum over every unit
// instead of merge_row_finding's "first row wins". NaNs are skipped by fmaxf
// in the maximum; an Inf gives an Inf scale (and is reported), as before.
//
// Measured on the H100 (standalone harness, same process, 50-launch averages):
// 4096x4096 F16 -> S8 36.8 us vs 54.8 us for the four-step path (device copy of
// x: 25.1 us); 8192x8192 F16 142 vs 177 us; 4096x4096 F32 52 vs 68 us. Still
// short of issue 9's 0.8 of copy bandwidth: after the barrier phase 2 was bound
// by the correctly rounded division of quantize_value (with x * (1/scale) in its
// place -- NOT bit-exact, timing only -- 4096x4096 F16 took 33.7 us); phase 2
// now quantizes through quantize_pack8_own_scale (reciprocal, bit-exact).
//
// Not done: keeping the first units of each block's range in shared memory
// across the barrier (up to ~113 KB per block at 2 blocks per SM) was tried and
// measured on the H100: it was slower (4096x4096 F16 -> S8: 40.9 us with it,
// 36.8 us without; 8192x8192: 150 vs 142 us), so phase 2 re-reads through L2.
//
// The grid-barrier contract: a grid-wide barrier is only safe when every block
// of the grid is resident at once. cudaLaunchCooperativeKernel guarantees it --
// it fails (cudaErrorCooperativeLaunchTooLarge) rather than launch a grid that
// cannot be co-resident, and the whole grid is scheduled together even while
// other kernels occupy the device. The grid is therefore at most the number of
// resident blocks the occupancy calculator gives for this kernel and its block
// size, times the SM count (and no more blocks than there are units of work).
// A device without cooperative launch (cudaDevAttrCooperativeLaunch == 0)
// never gets here: quantize_dispatch.cu
// keeps the four-step path for it, and for everything this kernel does not
// take (flatten plans, rows not 16-byte aligned, cols % 8 != 0), and
// LOWBIT_TENSOR_QUANT=legacy forces the four-step path everywhere (same-run
// comparisons). The kernel must never be launched with <<<...>>>.
//
// Scratch: the partials live in the context's tensor_partials_ (cuda_backend.h),
// kMaxBlocksPerSm floats per SM, allocated once; the dispatcher holds its mutex
// across the launch. Launches of one context are ordered on its stream, so two
// launches never use the partials at once.
#include <cooperative_groups.h>

#include <algorithm>

#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kMaxBlocksPerSm = 32;  // the most resident blocks per SM of any arch: sizes the partials

// The raw bytes of one unit of 8 columns of XT (16 bytes; 32 for F32), loaded before
// any of them is used; decoded with load_x8, so the values are those of every other
// quantize kernel.
template <int XT>
struct RawUnit {
    static constexpr int kWords = XT == LOWBIT_F32 ? 2 : 1;
    uint4 w[kWords];

    __device__ __forceinline__ void load(const unsigned char* p) {
#pragma unroll
        for (int i = 0; i < kWords; ++i) w[i] = reinterpret_cast<const uint4*>(p)[i];
    }
    __device__ __forceinline__ void decode(float v[kUnit]) const {
        load_x8<XT>(reinterpret_cast<const unsigned char*>(w), v);
    }
};

// A thread's position in the tensor: row and unit within the row, moved by
// +-blockDim units at a time (dr rows and du units, carried at the row's end).
// 32-bit: quantize_tensor_dynamic_fits keeps rows and units per row below 2^30.
struct Cursor {
    int row, unit;

    __device__ __forceinline__ void forward(int dr, int du, int units_per_row) {
        row += dr;
        unit += du;
        if (unit >= units_per_row) {
            unit -= units_per_row;
            ++row;
        }
    }
    __device__ __forceinline__ void backward(int dr, int du, int units_per_row) {
        row -= dr;
        unit -= du;
        if (unit < 0) {
            unit += units_per_row;
            --row;
        }
    }
};

// Units loaded before any of them is used: 64 bytes in flight per thread and batch.
template <int XT>
constexpr int batch_for() { return XT == LOWBIT_F32 ? 2 : 4; }

// Requires: no flatten plan, quantize_rows_aligned(a), a.cols % 8 == 0, rows and
// cols / 8 below 2^30, a launch through cudaLaunchCooperativeKernel with
// blockDim.x == kThreads and gridDim.x <= the partials' capacity.
template <int XT, int BITS>
__global__ void __launch_bounds__(kThreads, 2) quantize_tensor_dynamic_kernel(QuantizeArgs a, StatusRef st,
                                                                              float* partials) {
    __shared__ float red[32];
    constexpr int qmax = BITS == 8 ? 127 : 7;
    constexpr int kUnitBytes = kUnit * x_bytes(XT);
    constexpr int kBatch = batch_for<XT>();

    // This block's range of units [begin, begin + len), split as evenly as the division allows.
    const int units_per_row = static_cast<int>(a.cols / kUnit);
    const int64_t total = a.rows * units_per_row;
    const int64_t per_block = total / gridDim.x, extra = total % gridDim.x;
    const int64_t b = blockIdx.x;
    const int64_t begin = b * per_block + (b < extra ? b : extra);
    const int64_t len = per_block + (b < extra ? 1 : 0);
    // Thread t takes the range's offsets t, t + kThreads, ...: n of them.
    const int t = threadIdx.x;
    const int n = t < len ? static_cast<int>((len - 1 - t) / kThreads) + 1 : 0;
    const int dr = kThreads / units_per_row, du = kThreads % units_per_row;
    const int64_t ldx_bytes = a.ldx * x_bytes(XT);
    const unsigned char* x = static_cast<const unsigned char*>(a.x);
    unsigned char* q = static_cast<unsigned char*>(a.q);
    auto x_at = [&](const Cursor& c) { return x + c.row * ldx_bytes + int64_t(c.unit) * kUnitBytes; };

    // ---- phase 1: max|x| over this thread's units ---------------------------------
    float m = 0.0f;
    Cursor cur{static_cast<int>((begin + t) / units_per_row), static_cast<int>((begin + t) % units_per_row)};
    for (int k = 0; k < n; k += kBatch) {
        RawUnit<XT> raw[kBatch];
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
            if (k + j < n) {
                raw[j].load(x_at(cur));
                cur.forward(dr, du, units_per_row);
            }
        }
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
            if (k + j < n) {
                float v[kUnit];
                raw[j].decode(v);
#pragma unroll
                for (int i = 0; i < kUnit; ++i) m = fmaxf(m, fabsf(v[i]));
            }
        }
    }
    m = block_max(m, red);
    if (threadIdx.x == 0) partials[blockIdx.x] = m;

    // ---- the grid barrier, then every block finds the same amax -----------------
    cooperative_groups::this_grid().sync();
    float amax = 0.0f;
    for (unsigned i = threadIdx.x; i < gridDim.x; i += kThreads) amax = fmaxf(amax, __ldcg(partials + i));
    const float scale = scale_from_amax(block_max(amax, red), qmax);
    if (blockIdx.x == 0 && threadIdx.x == 0) a.scales[0] = scale;

    // ---- phase 2: quantize the same units, last read first ----------------------
    // Every finite |x| <= amax, the precondition of quantize_pack8_own_scale: the reciprocal
    // quantizer, bit-identical to the division (quant_math.cuh).
    const ScaleRecip rs = scale_recip(scale);
    Findings found;
    if (n > 0) {
        const int64_t last = begin + t + int64_t(n - 1) * kThreads;
        cur = Cursor{static_cast<int>(last / units_per_row), static_cast<int>(last % units_per_row)};
    }
    for (int k = n - 1; k >= 0; k -= kBatch) {
        RawUnit<XT> raw[kBatch];
        Cursor at = cur;
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
            if (k - j >= 0) {
                raw[j].load(x_at(cur));
                cur.backward(dr, du, units_per_row);
            }
        }
#pragma unroll
        for (int j = 0; j < kBatch; ++j) {
            if (k - j >= 0) {
                float v[kUnit];
                raw[j].decode(v);
                unsigned long long bad_col = kNoIndex;
                const int64_t c0 = int64_t(at.unit) * kUnit;
                unsigned lo, hi;
                quantize_pack8_own_scale<BITS>(v, rs, c0, lo, hi, bad_col);
                unsigned char* qrow = q + q_row_offset<BITS>(at.row, a.ldq);
                if constexpr (BITS == 8) *reinterpret_cast<uint2*>(qrow + c0) = make_uint2(lo, hi);
                else *reinterpret_cast<unsigned*>(qrow + c0 / 2) = lo;
                if (bad_col != kNoIndex)
                    Findings::keep_min(found.nonfinite, (static_cast<unsigned long long>(at.row) *
                                                             static_cast<unsigned long long>(a.cols) << 2) + bad_col);
                at.backward(dr, du, units_per_row);
            }
        }
    }
    report_findings(st, found);
}

using KernelFn = void (*)(QuantizeArgs, StatusRef, float*);

// Resident blocks per SM of `kernel` (the cooperative grid's bound), at most kMaxBlocksPerSm.
int blocks_per_sm(KernelFn kernel) {
    const int blocks = resident_blocks_per_sm(reinterpret_cast<const void*>(kernel), kThreads);
    if (blocks < 1) {
        int device = 0;
        LOWBIT_CUDA_CHECK(cudaGetDevice(&device));
        throw Error(LOWBIT_ERR_DEVICE, "quantize_tensor_dynamic_kernel cannot be resident on CUDA device " +
                                           std::to_string(device));
    }
    return std::min(blocks, kMaxBlocksPerSm);
}

template <int XT, int BITS>
void launch(const QuantizeArgs& a, const LaunchEnv& env, float* partials, int64_t partial_capacity) {
    const KernelFn kernel = quantize_tensor_dynamic_kernel<XT, BITS>;
    const int64_t units = a.rows * (a.cols / kUnit);
    const int64_t resident = int64_t(blocks_per_sm(kernel)) * env.sm_count;
    int64_t blocks = std::min<int64_t>(resident, (units + kThreads - 1) / kThreads);
    blocks = std::max<int64_t>(1, std::min<int64_t>(blocks, partial_capacity));

    QuantizeArgs args = a;
    StatusRef st = env.status;
    void* params[] = {&args, &st, &partials};
    const cudaError_t err = cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kernel),
                                                        dim3(static_cast<unsigned>(blocks)), dim3(kThreads), params,
                                                        0, env.stream);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        throw_cuda_error("launch of quantize_tensor_dynamic_kernel", err);
    }
    LOWBIT_CUDA_CHECK_LAUNCH("quantize_tensor_dynamic_kernel");
}

}  // namespace

int64_t quantize_tensor_dynamic_partials(int sm_count) { return int64_t(kMaxBlocksPerSm) * sm_count; }

bool quantize_tensor_dynamic_legacy_forced() {
    static const bool legacy = [] {
        const char* v = std::getenv("LOWBIT_TENSOR_QUANT");
        if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return false;
        if (std::strcmp(v, "legacy") == 0) return true;
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                    std::string("LOWBIT_TENSOR_QUANT=") + v + " is not understood: use 'legacy' (the four-step "
                    "PER_TENSOR path) or 'auto' (the default: one cooperative kernel where it can run)");
    }();
    return legacy;
}

bool quantize_tensor_dynamic_fits(const QuantizeArgs& a) {
    if (a.granularity != LOWBIT_PER_TENSOR || a.scales_given || quantize_tensor_dynamic_legacy_forced()) return false;
    constexpr int64_t kMaxIndex = int64_t(1) << 30;  // the kernel's row and unit indices are 32-bit
    return a.src_index == nullptr && a.rows > 0 && a.rows < kMaxIndex && a.cols > 0 && a.cols % kUnit == 0 &&
           a.cols / kUnit < kMaxIndex && quantize_rows_aligned(a);
}

void launch_quantize_tensor_dynamic(const QuantizeArgs& a, const LaunchEnv& env, float* partials,
                                    int64_t partial_capacity) {
    dispatch_quantize(a.x_type, a.bits, true, [&](auto xt, auto bits, auto) {
        launch<decltype(xt)::value, decltype(bits)::value>(a, env, partials, partial_capacity);
    });
}

}  // namespace cuda
}  // namespace lowbit
