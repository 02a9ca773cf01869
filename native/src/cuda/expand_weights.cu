// expand_weights.cu -- 4-bit operands to dense INT8 copies, so that the tuned INT8 wgmma kernels
// (sm90/) can run W4A8, W4A4 and DGQ A8W4 at M > 16.
//
// Why: Hopper's tensor cores have no fast INT4 path (INT4 MMA is emulated, ~50 TOPS against
// ~990 TOPS for INT8), so 4-bit operands must enter the tensor cores as INT8. The practical path
// is two launches on the context's stream: this kernel writes the INT8 operand W8 (rows x ldo, one
// byte per value, columns K .. ldo-1 zero) into a context-owned buffer, then the W8A8 GEMM reads
// it. It costs rows*K/2 bytes read + rows*K bytes written per call on top of the GEMM, which is
// small against the GEMM's time from M ~ 1024 on (bench: W4GemmBench). The later step is to
// expand inside a CUTLASS collective (codes loaded by TMA, expanded in registers or shared memory
// between the load and the wgmma), which removes that traffic.
//
// Operands: packed S4 weights (N rows), DGQ codes (N rows, with their group scales), and packed
// S4 activations (M rows, W4A4): an S4 matrix is the same nibble rows whichever side of the GEMM
// it is on. W4A4 expands both operands in one launch (launch_expand_pair): the grid is split
// between the two matrices in proportion to their sizes, so the small activation copy runs beside
// the weights' instead of after them (one launch gap and one tail less per call).
//
// Numerics (lowbit.h), per value, integers only:
//   S4 (W4A8, W4A4)    W8 = q, the nibble read as two's complement (-8 .. 7)
//   DGQ, no zero points W8 = low 8 bits of q * S2        (q signed, -8 .. 7)
//   DGQ, zero points   W8 = low 8 bits of (q - z) * S2  (q unsigned, 0 .. 15; z the group's S8)
// with S2 the group's U8 scale; "low 8 bits, read as two's complement" is lowbit.h's definition
// for weights that would not pass lowbit_dgq_check (checked weights never wrap). Every backend
// expands the same way, the GEMM accumulates exactly in int32: outputs are bit-identical to the
// CPU backend's.
//
// Work split: one thread expands a chunk of 32 columns of one row: 16 packed bytes in (one
// 16-byte load when every row starts 16-byte aligned), 32 bytes out (two 16-byte stores; the
// output rows are 16-byte aligned by construction). Consecutive threads take consecutive chunks
// of a row, so a warp reads 512 contiguous bytes and writes 1 KiB. Grid-stride loop over the
// rows * ceil(ldo / 32) chunks of a matrix (with two matrices, each over its share of the
// blocks); the chunk straddling K (and any past it) is masked to zero.
#include <algorithm>
#include <climits>

#include "cuda_backend.h"
#include "cuda_check.h"

namespace lowbit {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kChunk = 32;  // columns (weights) per thread and step: 16 packed bytes

// How a chunk's codes become INT8.
enum class Mode {
    S4,         // plain two's-complement nibbles
    DgqChunk,   // DGQ with group % 32 == 0: every chunk lies inside one group (one S2, one z)
    DgqAny      // DGQ with any other group size: scale and zero point looked up per weight
};

struct Params {
    PackedWeights w;     // the 4-bit matrix (w.n rows: N weights or M activations)
    int64_t row_bytes;   // packed bytes of a row that hold columns < K: ceil(K / 2)
    bool aligned16;      // every row of codes starts 16-byte aligned
    int8_t* out;         // w.n x ldo, 16-byte aligned
    int64_t ldo;         // multiple of 16, >= K
    int64_t chunks_per_row;
};

// One launch: one matrix, or two of the same Mode (W4A4: activations and weights). Blocks
// [0, blocks0) expand job[0], blocks [blocks0, gridDim.x) job[1], each share its own grid-stride
// loop.
struct Jobs {
    Params job[2];
    unsigned blocks0;
};

// 8 signed nibbles (one 32-bit word, code i in bits 4i..4i+3) to 8 INT8 values, as two words
// (codes 0..3, codes 4..7). Sign extension without a per-byte subtract: a byte b in 0..15 with
// bit 3 set gets 0xF0 OR-ed in; (b & 8) * 0x1E = 0xF0 stays inside its byte (no carries).
__device__ __forceinline__ void expand_s4(unsigned w, unsigned& lo, unsigned& hi) {
    unsigned even = w & 0x0F0F0F0Fu;          // codes 0, 2, 4, 6 in bytes 0..3
    unsigned odd = (w >> 4) & 0x0F0F0F0Fu;    // codes 1, 3, 5, 7
    even |= (even & 0x08080808u) * 0x1Eu;
    odd |= (odd & 0x08080808u) * 0x1Eu;
    lo = __byte_perm(even, odd, 0x5140);      // even0 odd0 even1 odd1 = codes 0 1 2 3
    hi = __byte_perm(even, odd, 0x7362);      // even2 odd2 even3 odd3 = codes 4 5 6 7
}

// DGQ with one group for the whole word: 8 unsigned codes u (signed codes arrive as u = q + 8
// with z = 8) to the low bytes of (u - z) * S2. Two codes per 32-bit multiply, one per 16-bit
// lane: y = u * S2 + D with D = (-z * S2) mod 256; u * S2 + D <= 15 * 255 + 255 < 2^16, so the
// lanes never carry into each other, and the low byte of each lane is ((u - z) * S2) mod 256
// (arithmetic mod 256 commutes with + and *). d2 holds D in both lanes.
__device__ __forceinline__ void expand_dgq(unsigned u, unsigned s2, unsigned d2, unsigned& lo, unsigned& hi) {
    const unsigned y0 = (u & 0x000F000Fu) * s2 + d2;          // codes 0 and 4, in bytes 0 and 2
    const unsigned y1 = ((u >> 4) & 0x000F000Fu) * s2 + d2;   // codes 1 and 5
    const unsigned y2 = ((u >> 8) & 0x000F000Fu) * s2 + d2;   // codes 2 and 6
    const unsigned y3 = ((u >> 12) & 0x000F000Fu) * s2 + d2;  // codes 3 and 7
    const unsigned p = __byte_perm(y0, y1, 0x6240);           // codes 0 1 4 5
    const unsigned q = __byte_perm(y2, y3, 0x6240);           // codes 2 3 6 7
    lo = __byte_perm(p, q, 0x5410);                           // codes 0 1 2 3
    hi = __byte_perm(p, q, 0x7632);                           // codes 4 5 6 7
}

// The 16 packed bytes of chunk c of a row; bytes at or past row_bytes read as 0 (never loaded).
__device__ __forceinline__ uint4 load_chunk(const Params& p, const uint8_t* row, int64_t c) {
    const int64_t b0 = c * (kChunk / 2);
    if (p.aligned16 && b0 + 16 <= p.row_bytes) return __ldg(reinterpret_cast<const uint4*>(row + b0));
    unsigned v[4] = {0, 0, 0, 0};
#pragma unroll
    for (int i = 0; i < 16; ++i)
        if (b0 + i < p.row_bytes) v[i / 4] |= static_cast<unsigned>(__ldg(row + b0 + i)) << (8 * (i % 4));
    return make_uint4(v[0], v[1], v[2], v[3]);
}

// W8 of one weight, the long way (DgqAny): code at column col of row `row`.
__device__ __forceinline__ unsigned dgq_weight(const Params& p, int64_t row, int64_t col, unsigned code) {
    const int64_t slot = row * (p.w.k / p.w.group) + col / p.w.group;
    const int s2 = __ldg(p.w.group_scales + slot);
    const int q = p.w.zero_points != nullptr ? static_cast<int>(code) - __ldg(p.w.zero_points + slot)
                                             : static_cast<int>(code ^ 8u) - 8;
    return static_cast<unsigned>(q * s2) & 0xFFu;
}

template <Mode M>
__global__ void __launch_bounds__(kThreads) expand_weights_kernel(const Jobs jobs) {
    // This block's matrix and its index among the blocks that share it (block-uniform).
    const bool second = blockIdx.x >= jobs.blocks0;
    const Params p = second ? jobs.job[1] : jobs.job[0];
    const int64_t block = second ? blockIdx.x - jobs.blocks0 : blockIdx.x;
    const int64_t blocks = second ? gridDim.x - jobs.blocks0 : jobs.blocks0;
    // Chunk t = row * chunks_per_row + c, t stepping by the share's thread count; (row, c) are
    // stepped along with it, so the loop needs no 64-bit division (an emulated ~70-instruction
    // sequence) per chunk.
    const int64_t cpr = p.chunks_per_row;
    const int64_t t0 = block * kThreads + threadIdx.x;
    const int64_t stride = blocks * kThreads;
    const int64_t row_step = stride / cpr, c_step = stride - row_step * cpr;
    int64_t row = t0 / cpr, c = t0 - row * cpr;
    for (; row < p.w.n; row += row_step, c += c_step) {
        if (c >= cpr) {
            c -= cpr;
            if (++row >= p.w.n) break;
        }
        const int64_t k0 = c * kChunk;
        const uint8_t* codes = p.w.codes + row * (p.w.ld / 2);
        const uint4 in = load_chunk(p, codes, c);
        const unsigned words[4] = {in.x, in.y, in.z, in.w};
        unsigned out[8];
        if (M == Mode::S4) {
#pragma unroll
            for (int i = 0; i < 4; ++i) expand_s4(words[i], out[2 * i], out[2 * i + 1]);
        } else if (M == Mode::DgqChunk) {
            // k0 < K here whenever any column of the chunk is < K; a chunk wholly past K is
            // masked below, so its (clamped) group slot only has to be in range.
            const int64_t groups = p.w.k / p.w.group;
            const int64_t g = min(k0, p.w.k - 1) / p.w.group;
            const unsigned s2 = __ldg(p.w.group_scales + row * groups + g);
            const bool signed_codes = p.w.zero_points == nullptr;
            const int z = signed_codes ? 8 : __ldg(p.w.zero_points + row * groups + g);
            const unsigned d = static_cast<unsigned>(-z * static_cast<int>(s2)) & 0xFFu;
            const unsigned flip = signed_codes ? 0x88888888u : 0u;  // signed q -> u = q + 8 (mod 16)
#pragma unroll
            for (int i = 0; i < 4; ++i) expand_dgq(words[i] ^ flip, s2, d | d << 16, out[2 * i], out[2 * i + 1]);
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                unsigned v = 0;
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int64_t col = k0 + 4 * i + e;
                    if (col < p.w.k)
                        v |= dgq_weight(p, row, col, (words[i / 2] >> (4 * (4 * (i % 2) + e))) & 0xFu) << (8 * e);
                }
                out[i] = v;
            }
        }
        // Columns at or past K are zero (the GEMM may read them as padding of the rows).
        const int64_t valid = p.w.k - k0;
        if (valid < kChunk) {
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const int64_t keep = valid - 4 * i;  // bytes of word i that hold columns < K
                out[i] &= keep >= 4 ? 0xFFFFFFFFu : keep <= 0 ? 0u : (1u << (8 * keep)) - 1u;
            }
        }
        uint4* dst = reinterpret_cast<uint4*>(p.out + row * p.ldo + k0);
        dst[0] = make_uint4(out[0], out[1], out[2], out[3]);
        if (k0 + kChunk <= p.ldo) dst[1] = make_uint4(out[4], out[5], out[6], out[7]);
    }
}

// Grid: as many blocks as the SMs hold at once (one wave; the kernel's registers decide how many),
// each thread keeping one 16-byte load in flight; the grid-stride loops cover the rest. Fewer
// blocks when there are fewer chunks. With two matrices that together need more than a wave, the
// wave is split in proportion to their chunk counts (at least one block each), so both shares
// end at about the same time. The occupancy is queried once, for the first device used.
template <Mode M>
void launch(const Params* jobs, int count, const LaunchEnv& env) {
    static const int per_sm = [] {
        int blocks = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, expand_weights_kernel<M>, kThreads, 0) !=
                cudaSuccess || blocks < 1) {
            (void)cudaGetLastError();
            blocks = 4;
        }
        return blocks;
    }();
    const int64_t wave = std::max<int64_t>(2, static_cast<int64_t>(env.sm_count) * per_sm);
    int64_t chunks[2] = {0, 0}, need[2] = {0, 0};
    for (int i = 0; i < count; ++i) {
        chunks[i] = jobs[i].w.n * jobs[i].chunks_per_row;
        need[i] = std::max<int64_t>(1, (chunks[i] + kThreads - 1) / kThreads);
    }
    Jobs l{{jobs[0], count == 2 ? jobs[1] : jobs[0]}, 0};
    int64_t grid;
    if (count == 1) {
        grid = std::min(need[0], wave);
        l.blocks0 = static_cast<unsigned>(grid);
    } else if (need[0] + need[1] <= wave) {
        grid = need[0] + need[1];
        l.blocks0 = static_cast<unsigned>(need[0]);
    } else {
        grid = wave;
        const double share = static_cast<double>(chunks[0]) / static_cast<double>(chunks[0] + chunks[1]);
        const int64_t b0 = static_cast<int64_t>(share * static_cast<double>(wave) + 0.5);
        l.blocks0 = static_cast<unsigned>(std::min(std::max<int64_t>(b0, 1), wave - 1));
    }
    expand_weights_kernel<M><<<static_cast<unsigned>(grid), kThreads, 0, env.stream>>>(l);
}

// The kernel's view of job j, after checking its preconditions.
Params params_of(const ExpandJob& j) {
    const PackedWeights& w = j.src;
    if (j.ldo % 16 != 0 || j.ldo < w.k || reinterpret_cast<uintptr_t>(j.out) % 16 != 0 || w.ld % 2 != 0 ||
        w.ld < w.k || (w.group_scales != nullptr && (w.group <= 0 || w.k % w.group != 0)))
        throw Error(LOWBIT_ERR_INTERNAL, "launch_expand: output or 4-bit operand layout off its preconditions");
    return Params{w, (w.k + 1) / 2, reinterpret_cast<uintptr_t>(w.codes) % 16 == 0 && (w.ld / 2) % 16 == 0,
                  j.out, j.ldo, (j.ldo + kChunk - 1) / kChunk};
}

Mode mode_of(const PackedWeights& w) {
    return w.group_scales == nullptr ? Mode::S4 : w.group % kChunk == 0 ? Mode::DgqChunk : Mode::DgqAny;
}

void launch_jobs(const Params* p, int count, Mode mode, const LaunchEnv& env) {
    switch (mode) {
        case Mode::S4: launch<Mode::S4>(p, count, env); break;
        case Mode::DgqChunk: launch<Mode::DgqChunk>(p, count, env); break;
        case Mode::DgqAny: launch<Mode::DgqAny>(p, count, env); break;
    }
    LOWBIT_CUDA_CHECK_LAUNCH("expand_weights_kernel");
}

}  // namespace

void launch_expand_weights(const PackedWeights& w, int8_t* out, int64_t ldo, const LaunchEnv& env) {
    const Params p = params_of(ExpandJob{w, out, ldo});
    launch_jobs(&p, 1, mode_of(w), env);
}

void launch_expand_pair(const ExpandJob& first, const ExpandJob& second, const LaunchEnv& env) {
    const Params p[2] = {params_of(first), params_of(second)};
    const Mode mode = mode_of(first.src);
    if (mode_of(second.src) != mode) {
        // Different expansions cannot share one kernel: two launches.
        launch_jobs(&p[0], 1, mode, env);
        launch_jobs(&p[1], 1, mode_of(second.src), env);
        return;
    }
    launch_jobs(p, 2, mode, env);
}

}  // namespace cuda
}  // namespace lowbit
