// bitplane_quantize.cu -- CudaBackend::bitplane_quantize: per-token
// quantization of activations straight into bit planes (lowbit_bitplane_quantize).
//
// One thread block per row (grid-stride over rows), 256 threads:
//   1. every thread reduces its columns: min / max (asymmetric) or max |x|
//      (symmetric), and the first non-finite column it sees;
//   2. block reduction; thread 0 derives scale and zero point exactly as the
//      CPU backend (lowbit.h; __fdiv_rn / __fsub_rn, rintf = half to even, no
//      FTZ) and writes them;
//   3. warps take 64-column words: lane l quantizes columns 64w + l and
//      64w + 32 + l, and for every plane i the two __ballot_sync masks of bit i
//      are the plane's word (column 64w + b in bit b, as lowbit.h lays it
//      out); lane i stores plane i. Padding columns (>= cols, up to ldp words)
//      get code 0, so every padding bit is written 0. Row sums of the codes
//      are reduced along the way.
// Rows of at most kRowWords words (16384 columns; the decode case, a few rows of
// a layer's width) take bitplane_quantize_row_kernel instead: 1024 threads per
// row, the row loaded into registers once with every load in flight (thread
// (warp, lane) holds columns 64 s + 32 h + lane of its words s = warp + 32 j),
// the range and the codes from the registers, and each code through the
// scale's reciprocal where that is exactly the division's (quant_math.cuh's
// test), else the division. The same bits, findings and padding as the loop
// kernel; at M = 1 one block per row is the whole grid, so the row's latency,
// not the SMs' throughput, is what the two kernels differ in. On sm_90 a few
// rows wider than 8192 columns are cut among the 4-8 blocks of a thread block
// cluster (RowCluster, launch_rows). LOWBIT_BITPLANE_QUANTIZE=rows|loop keeps
// one block per row, or the loop kernel, for comparisons.
// Non-finite inputs are recorded in the context's status (device_status.cuh)
// and reported by the next synchronize() / read(), as lowbit_quantize does.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda_backend.h"
#include "cluster_barrier.cuh"
#include "cuda_check.h"
#include "pdl.cuh"
#include "quant_math.cuh"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Scale and zero point of row r from its range (lo = min(0, x), hi = max(0, x);
// symmetric: hi = max |x|), written to the row's slots, exactly as the CPU backend
// (lowbit.h; __fdiv_rn / __fsub_rn, rintf = half to even).
__device__ __forceinline__ void row_scale(const BitplaneQuantizeArgs& a, int64_t r, int qmax, float l, float h,
                                          float& scale, int& z, bool write = true) {
    z = 0;
    if (a.asymmetric) {
        scale = __fdiv_rn(__fsub_rn(h, l), static_cast<float>(qmax));
        if (scale == 0.0f) scale = 1.0f;
        if (!(scale <= FLT_MAX)) scale = FLT_MAX;
        const float zf = fminf(fmaxf(rintf(__fdiv_rn(-l, scale)), 0.0f), static_cast<float>(qmax));
        z = static_cast<int>(zf);
        if (write) a.zeros[r] = z;
    } else {
        scale = __fdiv_rn(h, static_cast<float>(qmax));
        if (scale == 0.0f) scale = 1.0f;
    }
    if (write) a.scales[r] = scale;
}

// The code of x from t = rint(x / scale): asymmetric clamp(t + z, 0, qmax) (t
// first clamped to +-512), symmetric clamp(t, -qmax, qmax).
__device__ __forceinline__ int code_from(bool asymmetric, float t, int z, int qmax) {
    if (asymmetric) {
        t = fminf(fmaxf(t, -512.0f), 512.0f);
        return min(max(static_cast<int>(t) + z, 0), qmax);
    }
    const float fq = static_cast<float>(qmax);
    return static_cast<int>(fminf(fmaxf(t, -fq), fq));
}

// Value x of column c into a thread's part of a row's range (asymmetric: lo = min(0, x), hi =
// max(0, x); symmetric: hi = max |x|), or, when it is not finite, into the smallest non-finite
// column the thread has seen (column << 2 | its class, Findings).
__device__ __forceinline__ void take_value(float x, unsigned long long c, bool asymmetric, float& lo, float& hi,
                                           unsigned long long& bad_col) {
    if (!is_finite(x)) {
        Findings::keep_min(bad_col, c << 2 | nonfinite_class(x));
    } else if (asymmetric) {
        lo = fminf(lo, x);
        hi = fmaxf(hi, x);
    } else {
        hi = fmaxf(hi, fabsf(x));
    }
}

// The warp's range: lo = min, hi = max over its lanes, in every lane.
__device__ __forceinline__ void warp_range(float& lo, float& hi) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
        hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
    }
}

// One 64-column word of every plane: code[h] is the code of column 64 w + 32 h + lane; for plane i
// the two __ballot_sync masks of bit i are its word (column 64 w + b in bit b), stored by lane i
// at out[i * ldp].
__device__ __forceinline__ void store_plane_words(uint64_t* out, int64_t ldp, int bits, const int (&code)[2], int lane) {
    for (int i = 0; i < bits; ++i) {
        const unsigned lo_word = __ballot_sync(0xffffffffu, (static_cast<unsigned>(code[0]) >> i) & 1u);
        const unsigned hi_word = __ballot_sync(0xffffffffu, (static_cast<unsigned>(code[1]) >> i) & 1u);
        if (lane == i) out[i * ldp] = static_cast<uint64_t>(lo_word) | (static_cast<uint64_t>(hi_word) << 32);
    }
}

template <int XT>
__global__ void __launch_bounds__(kThreads) bitplane_quantize_kernel(BitplaneQuantizeArgs a, StatusRef st) {
    __shared__ float red_lo[kWarps], red_hi[kWarps];
    __shared__ long long red_sum[kWarps];
    __shared__ float s_scale;
    __shared__ int s_zero;
    pdl_wait();     // launched early behind the previous kernel (pdl.cuh): x may be its output
    pdl_trigger();  // the GEMM behind may start requesting its weights
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int bits = a.bits;
    const int qmax = a.asymmetric ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
    Findings found;

    for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
        const unsigned char* row = static_cast<const unsigned char*>(a.x) + r * a.ldx * x_bytes(XT);
        // 1. Range and the first non-finite column of this thread.
        float lo = 0.0f, hi = 0.0f;  // asymmetric: min(0, x), max(0, x); symmetric: hi = max |x|
        unsigned long long bad_col = kNoIndex;
        for (int64_t c = threadIdx.x; c < a.cols; c += kThreads)
            take_value(load_x<XT>(row, c), static_cast<unsigned long long>(c), a.asymmetric, lo, hi, bad_col);
        merge_row_finding(found, r, a.cols, bad_col);
        // 2. Block reduction, scale and zero point.
        warp_range(lo, hi);
        if (lane == 0) {
            red_lo[warp] = lo;
            red_hi[warp] = hi;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float l = red_lo[0], h = red_hi[0];
            for (int w = 1; w < kWarps; ++w) {
                l = fminf(l, red_lo[w]);
                h = fmaxf(h, red_hi[w]);
            }
            float scale;
            int z;
            row_scale(a, r, qmax, l, h, scale, z);
            s_scale = scale;
            s_zero = z;
        }
        __syncthreads();
        const float scale = s_scale;
        const int z = s_zero;
        // 3. Codes and planes, one 64-column word per warp step.
        long long sum = 0;
        for (int64_t w = warp; w < a.ldp; w += kWarps) {
            int code[2];
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int64_t c = w * 64 + h * 32 + lane;
                int v = 0;
                if (c < a.cols) v = code_from(a.asymmetric, rintf(__fdiv_rn(load_x<XT>(row, c), scale)), z, qmax);
                code[h] = v;
                sum += v;
            }
            store_plane_words(a.planes + r * bits * a.ldp + w, a.ldp, bits, code, lane);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) red_sum[warp] = sum;
        __syncthreads();
        if (threadIdx.x == 0) {
            long long t = 0;
            for (int w = 0; w < kWarps; ++w) t += red_sum[w];
            a.sums[r] = static_cast<int32_t>(t);
        }
        // The shared scratch is reused by the next row only after everyone has read it.
        __syncthreads();
    }
    report_findings(st, found);
}

// LOWBIT_BITPLANE_QUANTIZE=rows (one block per row) or loop; the default cuts a few wide rows among
// the blocks of a cluster (sm_90). Read once.
enum class PackMode { Clusters, Rows, Loop };
PackMode pack_mode() {
    static const PackMode mode = [] {
        const char* v = std::getenv("LOWBIT_BITPLANE_QUANTIZE");
        if (v == nullptr || *v == '\0' || std::strcmp(v, "clusters") == 0) return PackMode::Clusters;
        if (std::strcmp(v, "rows") == 0) return PackMode::Rows;
        if (std::strcmp(v, "loop") == 0) return PackMode::Loop;
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                    std::string("LOWBIT_BITPLANE_QUANTIZE=") + v + " is not one of clusters, rows, loop");
    }();
    return mode;
}
bool row_kernel_allowed() { return pack_mode() != PackMode::Loop; }
bool row_clusters_allowed() { return pack_mode() == PackMode::Clusters; }

constexpr int kRowThreads = 1024;
constexpr int kRowWarps = kRowThreads / 32;
constexpr int64_t kRowWords = 8 * kRowWarps;  // words of the widest row one block takes (J = 8; clusters: the same)

// CLUSTER: a row is cut among the C blocks of a thread block cluster (sm_90): block `rank` takes
// the words w = warp + 32 (rank + C j). The range is combined over the cluster through distributed
// shared memory (every block then derives the same scale; rank 0 writes it), and so are the row
// sums. Without: one block per row (C = 1), block barriers only.
template <bool CLUSTER>
struct RowCluster {
    int ranks = 1, rank = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    __device__ RowCluster() {
        if constexpr (CLUSTER) {
            const cooperative_groups::cluster_group c = cooperative_groups::this_cluster();
            ranks = static_cast<int>(c.num_blocks());
            rank = static_cast<int>(c.block_rank());
        }
    }
    // This block's shared-memory writes to the peers (cluster_barrier.cuh).
    __device__ void sync() const {
        if constexpr (CLUSTER) cluster_sync_handover();
        else __syncthreads();
    }
    // Only that the peers' reads of this block's shared memory are done (no fence: writes before
    // it are not handed over; cluster_barrier.cuh).
    __device__ void sync_reads_done() const {
        if constexpr (CLUSTER) cluster_sync_reads_done();
        else __syncthreads();
    }
    template <class T>
    __device__ T* peer(T* p, int q) const {
        if constexpr (CLUSTER) return cooperative_groups::this_cluster().map_shared_rank(p, q);
        else return p;
    }
#else
    __device__ RowCluster() {}
    __device__ void sync() const { __syncthreads(); }
    __device__ void sync_reads_done() const { __syncthreads(); }
    template <class T>
    __device__ T* peer(T* p, int) const { return p; }
#endif
};

// Rows of ldp <= J * 32 * C words, C blocks of kRowThreads per row (grid-stride over rows).
template <int XT, int J, bool CLUSTER>
__global__ void __launch_bounds__(kRowThreads) bitplane_quantize_row_kernel(BitplaneQuantizeArgs a, StatusRef st) {
    __shared__ float red_lo[kRowWarps], red_hi[kRowWarps];
    __shared__ long long red_sum[kRowWarps];
    __shared__ float s_range[2];  // this block's part of the row: lo, hi (read by the cluster)
    __shared__ long long s_sum;   // this block's code sum (read by rank 0)
    __shared__ float s_scale;
    __shared__ int s_zero;
    pdl_wait();     // launched early behind the previous kernel (pdl.cuh): x may be its output
    pdl_trigger();  // the GEMM behind may start requesting its weights
    const RowCluster<CLUSTER> cl;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int bits = a.bits;
    const int qmax = a.asymmetric ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
    constexpr float kSafe = 0.5f - 0x1p-13f;  // quant_math.cuh: the reciprocal's rounding test
    Findings found;
    // Word and column indices fit in 32 bits: ldp <= kRowWords (the dispatch).
    auto word = [&](int j) { return warp + kRowWarps * (cl.rank + cl.ranks * j); };

    for (int64_t r = blockIdx.x / cl.ranks; r < a.rows; r += gridDim.x / cl.ranks) {
        const unsigned char* row = static_cast<const unsigned char*>(a.x) + r * a.ldx * x_bytes(XT);
        // The thread's columns, all loads first (columns past cols read as 0: padding codes 0).
        float v[J][2];
#pragma unroll
        for (int j = 0; j < J; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int c = word(j) * 64 + h * 32 + lane;
                v[j][h] = c < a.cols ? load_x<XT>(row, c) : 0.0f;
            }
        // 1. Range and the smallest non-finite column of this thread.
        float lo = 0.0f, hi = 0.0f;
        unsigned long long bad_col = kNoIndex;
#pragma unroll
        for (int j = 0; j < J; ++j)
#pragma unroll
            for (int h = 0; h < 2; ++h)
                take_value(v[j][h], static_cast<unsigned long long>(word(j) * 64 + h * 32 + lane), a.asymmetric, lo, hi,
                           bad_col);
        merge_row_finding(found, r, a.cols, bad_col);
        // 2. Block, then cluster reduction (min / max: exact in any order; lo <= 0 <= hi, so 0 is
        // neutral for both), scale and zero point.
        warp_range(lo, hi);
        if (lane == 0) {
            red_lo[warp] = lo;
            red_hi[warp] = hi;
        }
        __syncthreads();
        float l = 0.0f, h = 0.0f;  // the row's range, in warp 0
        if (warp == 0) {
            l = red_lo[lane];
            h = red_hi[lane];
            warp_range(l, h);
        }
        if constexpr (CLUSTER) {
            // This block's range to its peers (rewritten only after the row's last cluster barrier).
            if (threadIdx.x == 0) {
                s_range[0] = l;
                s_range[1] = h;
            }
            cl.sync();
            if (warp == 0) {
                l = 0.0f;
                h = 0.0f;
                if (lane < cl.ranks) {
                    const float* p = cl.peer(s_range, lane);
                    l = p[0];
                    h = p[1];
                }
                warp_range(l, h);
            }
        }
        if (threadIdx.x == 0) {
            float scale;
            int z;
            row_scale(a, r, qmax, l, h, scale, z, cl.rank == 0);
            s_scale = scale;
            s_zero = z;
        }
        __syncthreads();
        const ScaleRecip rs = scale_recip(s_scale);
        const int z = s_zero;
        // 3. Codes: the reciprocal where its rounding is the division's, else the division. In a
        // cluster they stay in registers until the row sum has been handed over (4.): a cluster
        // barrier after the plane stores would wait for them (its release fence, cluster_barrier.cuh).
        long long sum = 0;
        int code[J][2];
#pragma unroll
        for (int j = 0; j < J; ++j) {
            const int w = word(j);
            code[j][0] = code[j][1] = 0;
            if (w >= a.ldp) continue;  // warp-uniform
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int c = w * 64 + h * 32 + lane;
                const float x = v[j][h];
                const float y = __fmul_rn(x, rs.inv);
                float t = rintf(y);
                if (!(rs.fast && is_finite(x) && fabsf(__fsub_rn(y, t)) < kSafe)) t = rintf(__fdiv_rn(x, rs.s));
                code[j][h] = c < a.cols ? code_from(a.asymmetric, t, z, qmax) : 0;
                sum += code[j][h];
            }
            if constexpr (!CLUSTER) store_plane_words(a.planes + r * bits * a.ldp + w, a.ldp, bits, code[j], lane);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) red_sum[warp] = sum;
        __syncthreads();
        if (warp == 0) {
            long long t = red_sum[lane];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
            if (!CLUSTER && lane == 0) a.sums[r] = static_cast<int32_t>(t);
            if (CLUSTER && lane == 0) s_sum = t;
        }
        if constexpr (CLUSTER) {
            cl.sync();
            if (cl.rank == 0 && threadIdx.x == 0) {
                long long t = 0;
                for (int q = 0; q < cl.ranks; ++q) t += *cl.peer(&s_sum, q);
                a.sums[r] = static_cast<int32_t>(t);
            }
        }
        // 4. A cluster's planes (one block per row stored them in 3.).
        if constexpr (CLUSTER) {
#pragma unroll
            for (int j = 0; j < J; ++j) {
                const int w = word(j);
                if (w >= a.ldp) break;  // warp-uniform
                store_plane_words(a.planes + r * bits * a.ldp + w, a.ldp, bits, code[j], lane);
            }
        }
        // The shared scratch (and, in a cluster, every block's range and sum) stays as it is until
        // everyone has read it.
        cl.sync_reads_done();
    }
    report_findings(st, found);
}

// C: the blocks per row. On sm_90, rows of more than 128 words (8192 columns) cut among a cluster
// of 4 to 8 blocks (32 words or more each: J <= 2) when the rows are few enough that one block per
// row would leave most SMs idle; else 1 (one block per row: at 8192 columns and below the single
// block was as fast as a cluster, measured). J: words per warp, a power of two.
template <int XT>
void launch_rows(const BitplaneQuantizeArgs& a, const LaunchEnv& env, int cc_major) {
    int64_t c = 1;
    if (cc_major >= 9 && a.ldp > 4 * kRowWarps && a.rows * 4 <= env.sm_count && row_clusters_allowed())
        c = std::min<int64_t>(8, a.ldp / kRowWarps);
    const int64_t j = (a.ldp + kRowWarps * c - 1) / (kRowWarps * c);
    const unsigned blocks = static_cast<unsigned>(c * grid_for(a.rows, int64_t(env.sm_count) * 2 / c));
    using Kernel = void (*)(BitplaneQuantizeArgs, StatusRef);
    const Kernel kernel = c > 1  ? (j <= 1 ? bitplane_quantize_row_kernel<XT, 1, true> : bitplane_quantize_row_kernel<XT, 2, true>)
                          : j <= 1 ? bitplane_quantize_row_kernel<XT, 1, false>
                          : j <= 2 ? bitplane_quantize_row_kernel<XT, 2, false>
                          : j <= 4 ? bitplane_quantize_row_kernel<XT, 4, false>
                                   : bitplane_quantize_row_kernel<XT, 8, false>;
    launch_clustered_with_pdl(kernel, blocks, kRowThreads, static_cast<unsigned>(c), env.stream, a, env.status);
}

}  // namespace

void CudaBackend::bitplane_quantize(const BitplaneQuantizeArgs& a) {
    activate();
    LaunchEnv env = launch_env(kOpBitplaneQuantize, a.cols);
    struct MarkPending {
        CudaBackend* self;
        ~MarkPending() { self->mark_status_pending(); }
    } mark{this};
    if (a.ldp <= kRowWords && row_kernel_allowed()) {
        const int cc = compute_capability_major();
        switch (a.x_type) {
            case LOWBIT_F32: launch_rows<LOWBIT_F32>(a, env, cc); break;
            case LOWBIT_F16: launch_rows<LOWBIT_F16>(a, env, cc); break;
            default: launch_rows<LOWBIT_BF16>(a, env, cc); break;
        }
        LOWBIT_CUDA_CHECK_LAUNCH("bitplane_quantize_row_kernel");
        return;
    }
    const unsigned blocks = grid_for(a.rows, int64_t(env.sm_count) * 8);
    switch (a.x_type) {
        case LOWBIT_F32: launch_with_pdl(bitplane_quantize_kernel<LOWBIT_F32>, blocks, kThreads, env.stream, a, env.status); break;
        case LOWBIT_F16: launch_with_pdl(bitplane_quantize_kernel<LOWBIT_F16>, blocks, kThreads, env.stream, a, env.status); break;
        default: launch_with_pdl(bitplane_quantize_kernel<LOWBIT_BF16>, blocks, kThreads, env.stream, a, env.status); break;
    }
    LOWBIT_CUDA_CHECK_LAUNCH("bitplane_quantize_kernel");
}

}  // namespace cuda
}  // namespace lowbit
