// quantize_per_token.cu -- dynamic PER_ROW quantization (per-token activations) of compact,
// aligned rows: a persistent grid of row blocks with the row in registers as loaded (packed halves)
// and a reciprocal quantizer (0.81-0.96 of a device copy on the H100, bench/RESULTS.md).
//
// Takes (launch_quantize_per_token returns true) PER_ROW with computed scales, no flatten plan,
// quantize_rows_aligned (16-byte aligned x rows, 8/4-byte aligned q rows), cols % 8 == 0 and at
// most 16384 columns -- or, on sm_90, at most 131072 columns in rows few enough (4 per SM or
// fewer) to be cut among the blocks of a cluster (quantize_per_token_cluster_kernel: a decode
// step's down_proj input); everything else -- and everything when LOWBIT_ROWQUANT=legacy -- stays
// with quantize_rowwise.cu (its register-resident kernel is this file's predecessor).
//
// Layout of the work:
//   block    one row at a time, `threads` = a multiple of 32 sized so that thread t holds the
//            row's units of 8 columns t, t + threads, ... (UPL of them, at most 4; units past the
//            row's end hold zeros and are not stored). A 4096-column F16 row: 128 threads x 4
//            units; 14336 columns: 448 x 4; F32 rows up to 8192 columns take 2 units per thread
//            and twice the threads (blocks of at most 512 threads).
//   grid     persistent: as many blocks as can be resident (occupancy calculator) and no more than
//            rows; block b takes rows b, b + grid, b + 2 grid, ... in increasing order.
//   pipeline two register buffers per thread, A and B: row r's units are in A; the loads of row
//            r + grid are issued into B BEFORE row r's max, barrier, quantize and stores, so the
//            SM's memory pipe has the next rows' bytes in flight while it computes; then the roles
//            swap (the loop is unrolled by two: register arrays cannot be indexed at run time).
//            Measured on the H100, this prefetch made the kernel 2-16% SLOWER than issuing each
//            row's loads just before its own max (the default; LOWBIT_ROWQUANT=prefetch keeps the
//            pipelined variant for comparisons): with 8 blocks of 128 threads per SM at 4096
//            columns, the other blocks already keep the memory pipe busy.
//   raw      units are kept as the bytes loaded (one 16-byte word per unit of F16/BF16, two for
//            F32), so a buffer costs 4 (8) registers per unit instead of 8 floats; the max is taken
//            on packed halves (__habs2 / __hmax2: exact, and NaN operands are dropped as fmaxf drops
//            them) and the values are decoded to float (load_x8's decoding) only to quantize.
//   reduce   warp_max, then (blocks of more than one warp) the warps' maxima through shared memory
//            and ONE barrier per row: the slots alternate between two sets with the rows, so a set
//            is rewritten only after the barrier of the row in between.
//   quantize quantize_pack8_own_scale (quant_math.cuh): the row's reciprocal instead of a division
//            per element, the rounding by adding 1.5 * 2^23, the division kept for values next to a
//            rounding boundary and for non-finite values; one 8-byte (S8) or 4-byte (S4) store per
//            unit, coalesced across the warp.
//   loads    ld.global.nc.L1::no_allocate (x is read once; L1 keeps nothing of it). The stores are
//            plain: q is read next by the GEMM, which should find it in L2.
//
// The bits are those of every other quantize path and of the CPU backend: the max is the same
// maximum (fmaxf / __hmax2 on exact values, NaN dropped), scale = scale_from_amax(amax, qmax), and
// quantize_pack8_own_scale gives quantize_value's codes. Findings: the smallest non-finite column
// of a row (quantize_pack8's bookkeeping), merged per thread with merge_row_finding (rows walked
// in increasing order) and recorded once per thread, as in quantize_rowwise.cu.
//
// Registers (ptxas, CUDA 13.0): __launch_bounds__(512, 2) for F16/BF16 caps a thread at 64, so a
// 128-thread block (4096 columns) runs 8 to an SM and a 448-thread block (14336) 2; the pipelined
// 4-unit kernel then keeps one register in local memory across a row on sm_90a (unbounded it took
// 77 registers: 6 and 1 blocks per SM). F32 takes __launch_bounds__(512, 1): up to 115 registers
// for two buffers of 4 units (rows of more than 8192 columns). Per unit of 8 F16 values the fast
// path is about 55 instructions (8 HADD2.F32, 8 FMUL, 24 FADD, 8 FSETP, 6 PRMT) against about 250
// for the division-based quantize_store8, and none of them is a quarter-rate MUFU/F2I/FRND.
// (ptxas interleaves the first next-row load with the current row's max, so part of the prefetch
// waits for the current row's data; one reason the pipelined variant does not pay.)
//
// LOWBIT_ROWQUANT (read once): unset, "" or "auto" -- this kernel where it fits, without the
// next-row loads; "prefetch" -- the pipelined variant; "legacy" -- quantize_rowwise.cu's kernels
// for everything (same-run comparisons). Anything else is an error.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
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

constexpr int64_t kMaxCols = 16384;

// Blocks of at most 512 threads (16384 columns at 4 units per thread), so that ptxas may give a
// thread up to 128 registers: two buffers of 4 F32 units are 64.
constexpr int kMaxThreads = 512;

// One thread's UPL units of a row, as loaded.
template <int XT, int UPL>
struct RowUnits {
    static constexpr int kWords = XT == LOWBIT_F32 ? 2 : 1;  // 16-byte words per unit
    uint4 w[UPL][kWords];

    // Units t, t + nthreads, ... of the row starting at `row`; units >= `units`, and every unit
    // unless `valid` (a row past the end: `row` is then not dereferenced), read as +0.
    __device__ __forceinline__ void load(const unsigned char* row, bool valid, int64_t units, int t, int nthreads) {
#pragma unroll
        for (int u = 0; u < UPL; ++u) {
            const int64_t unit = t + int64_t(u) * nthreads;
#pragma unroll
            for (int k = 0; k < kWords; ++k) w[u][k] = load_once16(row + (unit * kWords + k) * 16, valid && unit < units);
        }
    }

    // max |x| over the units (NaN dropped; +0 for none).
    __device__ __forceinline__ float amax() const {
        if constexpr (XT == LOWBIT_F32) {
            float m = 0.0f;
#pragma unroll
            for (int u = 0; u < UPL; ++u) {
#pragma unroll
                for (int k = 0; k < kWords; ++k) {
                    m = fmaxf(m, fabsf(__uint_as_float(w[u][k].x)));
                    m = fmaxf(m, fabsf(__uint_as_float(w[u][k].y)));
                    m = fmaxf(m, fabsf(__uint_as_float(w[u][k].z)));
                    m = fmaxf(m, fabsf(__uint_as_float(w[u][k].w)));
                }
            }
            return m;
        } else if constexpr (XT == LOWBIT_F16) {
            __half2 m = __float2half2_rn(0.0f);
#pragma unroll
            for (int u = 0; u < UPL; ++u) {
                const unsigned p[4] = {w[u][0].x, w[u][0].y, w[u][0].z, w[u][0].w};
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    __half2 h;
                    memcpy(&h, &p[i], sizeof(h));
                    m = __hmax2(m, __habs2(h));
                }
            }
            return fmaxf(__low2float(m), __high2float(m));
        } else {
            __nv_bfloat162 m = __float2bfloat162_rn(0.0f);
#pragma unroll
            for (int u = 0; u < UPL; ++u) {
                const unsigned p[4] = {w[u][0].x, w[u][0].y, w[u][0].z, w[u][0].w};
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    __nv_bfloat162 h;
                    memcpy(&h, &p[i], sizeof(h));
                    m = __hmax2(m, __habs2(h));
                }
            }
            return fmaxf(__low2float(m), __high2float(m));
        }
    }

    // The 8 values of unit u, as float (load_x8's decoding, so every quantize path's values).
    __device__ __forceinline__ void decode(int u, float v[kUnit]) const {
        load_x8<XT>(reinterpret_cast<const unsigned char*>(w[u]), v);
    }
};

// Codes and stores of this thread's units of row r with scale rs: buf holds units u0 + t,
// u0 + t + blockDim.x, ... of the row (those < u0 + units); their findings merged into `found`.
template <int XT, int BITS, int UPL>
__device__ __forceinline__ void quantize_units(const QuantizeArgs& a, int64_t r, const RowUnits<XT, UPL>& buf,
                                               int64_t u0, int64_t units, const ScaleRecip& rs, Findings& found) {
    unsigned char* qrow = static_cast<unsigned char*>(a.q) + q_row_offset<BITS>(r, a.ldq);
    unsigned long long bad_col = kNoIndex;
#pragma unroll
    for (int u = 0; u < UPL; ++u) {
        const int64_t unit = threadIdx.x + int64_t(u) * blockDim.x;
        if (unit < units) {
            float v[kUnit];
            buf.decode(u, v);
            const int64_t c0 = (u0 + unit) * kUnit;
            unsigned lo, hi;
            quantize_pack8_own_scale<BITS>(v, rs, c0, lo, hi, bad_col);
            if constexpr (BITS == 8) {
                *reinterpret_cast<uint2*>(qrow + c0) = make_uint2(lo, hi);
            } else {
                *reinterpret_cast<unsigned*>(qrow + c0 / 2) = lo;
            }
        }
    }
    merge_row_finding(found, r, a.cols, bad_col);
}

// Row r, whose units are in `buf`: scale, codes, stores, findings.
template <int XT, int BITS, int UPL>
__device__ __forceinline__ void quantize_row_units(const QuantizeArgs& a, int64_t r, const RowUnits<XT, UPL>& buf,
                                                   int64_t units, float* slots, Findings& found) {
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const float s = scale_from_amax(row_max(buf.amax(), slots), qmax);
    if (threadIdx.x == 0) a.scales[r] = s;
    quantize_units<XT, BITS, UPL>(a, r, buf, 0, units, scale_recip(s), found);
}

// Requires what launch_quantize_per_token checks; blockDim.x a multiple of 32 with
// UPL * blockDim.x >= cols / 8.
template <int XT, int BITS, int UPL, bool PREFETCH>
__global__ void __launch_bounds__(kMaxThreads, XT == LOWBIT_F32 ? 1 : 2) quantize_per_token_kernel(QuantizeArgs a, StatusRef st) {
    __shared__ float slots[2][32];
    pdl_wait();     // launched early behind the previous kernel (pdl.cuh): x may be its output
    pdl_trigger();  // the GEMM behind may start requesting its weights
    const int64_t units = a.cols / kUnit;
    const int64_t ldx_bytes = a.ldx * x_bytes(XT);
    const unsigned char* x = static_cast<const unsigned char*>(a.x);
    const int t = threadIdx.x, nt = blockDim.x;
    const int64_t step = gridDim.x;
    Findings found;
    RowUnits<XT, UPL> ra, rb;

    // grid <= rows: every block has row blockIdx.x. The loads of a row past the end are
    // predicated off (no branch: see load_once16).
    int64_t r = blockIdx.x;
    if (PREFETCH) ra.load(x + r * ldx_bytes, true, units, t, nt);
    for (; r < a.rows; r += 2 * step) {
        // Row r (in ra, or loaded now), while row r + step goes into rb.
        const int64_t r1 = r + step;
        if (!PREFETCH) ra.load(x + r * ldx_bytes, true, units, t, nt);
        if (PREFETCH) rb.load(x + r1 * ldx_bytes, r1 < a.rows, units, t, nt);
        quantize_row_units<XT, BITS, UPL>(a, r, ra, units, slots[0], found);
        if (r1 >= a.rows) break;
        // Row r1 (in rb), while row r + 2 step goes into ra.
        const int64_t r2 = r1 + step;
        if (!PREFETCH) rb.load(x + r1 * ldx_bytes, true, units, t, nt);
        if (PREFETCH) ra.load(x + r2 * ldx_bytes, r2 < a.rows, units, t, nt);
        quantize_row_units<XT, BITS, UPL>(a, r1, rb, units, slots[1], found);
    }
    report_findings(st, found);
}

// Rows wider than kMaxCols, few of them (sm_90): a row is cut among the C blocks of a thread block
// cluster, block `rank` taking the units [rank·per, (rank + 1)·per) (per = ceil(units / C), UPL =
// 4 per thread). The row's max |x| is combined over the cluster through distributed shared memory
// (fmaxf: exact in any order), so every block derives the same scale (rank 0 writes it); codes and
// findings are the per-token kernel's. Two cluster barriers per row: the peers' maxima are read
// between them, and a block's slot is rewritten only after the second.
constexpr int kClusterUpl = 4;
constexpr int kMaxClusterBlocks = 8;
constexpr int64_t kMaxClusterCols = int64_t{kMaxClusterBlocks} * kMaxCols;

template <int XT, int BITS>
__global__ void __launch_bounds__(kMaxThreads, 1) quantize_per_token_cluster_kernel(QuantizeArgs a, StatusRef st) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    namespace cg = cooperative_groups;
    __shared__ float slots[32];
    __shared__ float s_amax;  // this block's max (read by the cluster)
    __shared__ float s_row;   // the row's max
    pdl_wait();     // launched early behind the previous kernel (pdl.cuh): x may be its output
    pdl_trigger();  // the GEMM behind may start requesting its weights
    constexpr int qmax = BITS == 8 ? 127 : 7;
    const cg::cluster_group cl = cg::this_cluster();
    const int ranks = static_cast<int>(cl.num_blocks()), rank = static_cast<int>(cl.block_rank());
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t units = a.cols / kUnit;
    const int64_t per = (units + ranks - 1) / ranks;
    const int64_t u0 = rank * per, mine = std::max<int64_t>(0, std::min(units, u0 + per) - u0);
    const int64_t ldx_bytes = a.ldx * x_bytes(XT);
    const unsigned char* x = static_cast<const unsigned char*>(a.x);
    Findings found;
    for (int64_t r = blockIdx.x / ranks; r < a.rows; r += gridDim.x / ranks) {
        RowUnits<XT, kClusterUpl> buf;
        buf.load(x + r * ldx_bytes + u0 * kUnit * x_bytes(XT), mine > 0, mine, threadIdx.x, blockDim.x);
        const float m = row_max(buf.amax(), slots);
        if (threadIdx.x == 0) s_amax = m;
        cluster_sync_handover();
        if (warp == 0) {
            const float v = warp_max(lane < ranks ? *cl.map_shared_rank(&s_amax, lane) : 0.0f);
            if (lane == 0) s_row = v;
        }
        __syncthreads();
        const float s = scale_from_amax(s_row, qmax);
        if (rank == 0 && threadIdx.x == 0) a.scales[r] = s;
        quantize_units<XT, BITS, kClusterUpl>(a, r, buf, u0, mine, scale_recip(s), found);
        cluster_sync_reads_done();  // the peers have read s_amax (and every thread s_row) before the next row
    }
    report_findings(st, found);
#else
    (void)a, (void)st;
    __trap();  // unreachable: launch_quantize_per_token clusters only on compute capability 9.0+
#endif
}

enum class Mode { kAuto, kLegacy, kPrefetch };

Mode rowquant_mode() {
    static const Mode mode = [] {
        const char* v = std::getenv("LOWBIT_ROWQUANT");
        if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return Mode::kAuto;
        if (std::strcmp(v, "legacy") == 0) return Mode::kLegacy;
        if (std::strcmp(v, "prefetch") == 0) return Mode::kPrefetch;
        throw Error(LOWBIT_ERR_INVALID_ARGUMENT,
                    std::string("LOWBIT_ROWQUANT=") + v + " is not understood: use 'auto' (the default: the "
                    "per-token kernel where it fits), 'legacy' (quantize_rowwise.cu's kernels) or "
                    "'prefetch' (the per-token kernel loading each block's next row ahead)");
    }();
    return mode;
}

using KernelFn = void (*)(QuantizeArgs, StatusRef);

template <int XT, int BITS, int UPL, bool PREFETCH>
void launch(const QuantizeArgs& a, const LaunchEnv& env, int threads) {
    const KernelFn kernel = quantize_per_token_kernel<XT, BITS, UPL, PREFETCH>;
    // A launch that cannot be resident (0) fails loudly at launch; the grid is at least one block.
    const int per_sm = std::max(1, resident_blocks_per_sm(reinterpret_cast<const void*>(kernel), threads));
    const unsigned blocks = grid_for(a.rows, int64_t(per_sm) * env.sm_count);
    launch_with_pdl(kernel, blocks, threads, env.stream, a, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("quantize_per_token_kernel");
}

// Units per thread: F16/BF16 rows of more than 64 units take 4 (a buffer is 16 registers, and a
// 4096-column row is 128 threads); F32 units are twice the registers, so F32 rows take 2 up to
// 8192 columns (at most 512 threads) and 4 beyond. Short rows take 1 or 2 units in one warp.
template <int XT, int BITS, bool PREFETCH>
void launch_for_width(const QuantizeArgs& a, const LaunchEnv& env) {
    const int64_t units = a.cols / kUnit;
    const int64_t two_upl = XT == LOWBIT_F32 ? 2 * kMaxThreads : 64;  // the most units at 2 per thread
    const int upl = units <= 32 ? 1 : units <= two_upl ? 2 : 4;
    const int threads = static_cast<int>((units + 32 * upl - 1) / (32 * upl) * 32);
    switch (upl) {
        case 1: launch<XT, BITS, 1, PREFETCH>(a, env, threads); break;
        case 2: launch<XT, BITS, 2, PREFETCH>(a, env, threads); break;
        default: launch<XT, BITS, 4, PREFETCH>(a, env, threads);
    }
}

// Rows of kMaxCols < cols <= kMaxClusterCols: C = the fewest blocks of at most 448 units (3584
// columns) each, at most 8; the grid is C blocks per row, at most two rows per SM pair.
template <int XT, int BITS>
void launch_clusters(const QuantizeArgs& a, const LaunchEnv& env) {
    const int64_t units = a.cols / kUnit;
    const int64_t c = std::min<int64_t>(kMaxClusterBlocks, (units + 447) / 448);
    const int64_t per = (units + c - 1) / c;
    const int threads = static_cast<int>((per + 32 * kClusterUpl - 1) / (32 * kClusterUpl) * 32);
    const unsigned blocks = static_cast<unsigned>(c * grid_for(a.rows, std::max<int64_t>(1, env.sm_count / c)));
    launch_clustered_with_pdl(quantize_per_token_cluster_kernel<XT, BITS>, blocks, threads, static_cast<unsigned>(c),
                              env.stream, a, env.status);
    LOWBIT_CUDA_CHECK_LAUNCH("quantize_per_token_cluster_kernel");
}

bool clusters_fit(const QuantizeArgs& a, const LaunchEnv& env) {
    return a.cols > kMaxCols && a.cols <= kMaxClusterCols && a.rows * 4 <= env.sm_count && current_cc_major() >= 9;
}

}  // namespace

bool launch_quantize_per_token(const QuantizeArgs& a, const LaunchEnv& env) {
    if (a.granularity != LOWBIT_PER_ROW || a.scales_given || a.src_index != nullptr) return false;
    if (a.rows < 1 || a.cols < kUnit || a.cols % kUnit != 0 || !quantize_rows_aligned(a)) return false;
    const Mode mode = rowquant_mode();
    if (mode == Mode::kLegacy) return false;
    if (clusters_fit(a, env)) {
        dispatch_quantize(a.x_type, a.bits, false, [&](auto xt, auto bits, auto) {
            launch_clusters<decltype(xt)::value, decltype(bits)::value>(a, env);
        });
        return true;
    }
    if (a.cols > kMaxCols) return false;
    dispatch_quantize(a.x_type, a.bits, mode == Mode::kPrefetch, [&](auto xt, auto bits, auto prefetch) {
        launch_for_width<decltype(xt)::value, decltype(bits)::value, decltype(prefetch)::value>(a, env);
    });
    return true;
}

}  // namespace cuda
}  // namespace lowbit
