// gemv_stream.cuh -- the weight-streaming GEMM for decode (small M): what the dispatch
// (gemm_dispatch.cu, gemm_dgq_simt.cu) needs to know about it. The kernels and their design
// notes are in gemv_stream.cu.
//
// out[M,N] = epilogue(A[M,K] * W[N,K]^T) for M <= kStreamMaxM, A S8 (one token per row), W one of
//   S8   INT8 weights (W8A8)
//   S4   packed INT4 weights, lowbit.h's nibble order (W4A8, per-channel scales)
//   DGQ  packed 4-bit codes with U8 integer group scales and optional S8 zero points, expanded
//        to INT8 exactly as lowbit_gemm_dgq defines it (low 8 bits of (q - z) * S2)
// or A packed S4 with S4 weights (W4A4): the activations are expanded to INT8 as they are staged;
// or, for lowbit_bitplane_gemm with 2-bit weights (ABQ-LLM's W2A8 and the like), both operands
// as bit planes (lowbit.h's layout): the two weight planes are expanded to INT8 codes in
// registers and the activation planes (1..8 bits) to bytes as they are staged, then the same
// INT8 tensor-core MMAs (W2: S8 activations; W2xU8: unsigned 8-bit activations, a U8 operand),
// and the bit-plane GEMM's own epilogue (zero-point terms, bitplane_epilogue.cuh).
// with exact int32 accumulation and the epilogue of epilogue.cuh: bit-identical to the CPU
// backend and to the portable kernel, whatever the split of K over blocks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda_backend.h"
#include "epilogue.cuh"

namespace lowbit {
namespace cuda {

// Requests with M up to this many tokens go to the streaming kernels. Why 16: the kernels
// feed the tensor cores with the weights as the 16-row A operand and the tokens as the
// 8-column B operand of mma.m16n8k32, so M <= 8 costs one MMA per 16 x 32 weight block and
// M <= 16 two; past 16 every further 8 tokens adds another MMA, shared-memory read and
// accumulator set per weight block, and the tile kernels (CUTLASS wgmma for W8A8), which
// reuse each weight fragment over 64+ tokens, are the better fit. The weight bytes stay the
// dominant cost up to 16 tokens, so 16 is where one kernel serves every decode batch.
constexpr int64_t kStreamMaxM = 16;

enum class StreamFormat { S8, S4, Dgq, W2, W2xU8 };

constexpr bool is_w2(StreamFormat f) { return f == StreamFormat::W2 || f == StreamFormat::W2xU8; }

// One streaming GEMM request. Pointers are device pointers.
struct StreamProblem {
    StreamFormat format;
    const int8_t* a;            // S8, M x K, lda elements
    int64_t lda;
    const uint8_t* w;           // N rows; S8: ldw bytes per row; S4 / DGQ: ldw nibbles per row
    int64_t ldw;
    const uint8_t* group_scales;  // DGQ: N x (K / group) U8, else null
    const int8_t* zero_points;    // DGQ: N x (K / group) S8 or null (signed codes)
    int64_t group;                // DGQ group size
    int64_t m, n, k;
    Epilogue ep;                  // b_scales = the per-channel (or per-tensor) weight scales
    bool a_s4 = false;            // A is packed S4 (lda in nibbles, even): W4A4, S4 weights only
    const BitplaneGemmArgs* planes = nullptr;  // W2 / W2xU8: the whole bit-plane request (a, lda,
                                               // w, ldw, group, ep unused; m, n, k as there)
    // The weights (and DGQ's group scales and zero points) may be read before the kernel waits
    // for the previous kernel on the stream (pdl.cuh): the previous operation did not use them.
    bool weights_early = false;
};

// The weight buffers p reads before its dependency wait (null where p has none): the weights
// or planes, DGQ's group scales and zero points.
inline void stream_early_buffers(const StreamProblem& p, const void* (&out)[3]) {
    out[0] = p.planes != nullptr ? static_cast<const void*>(p.planes->w) : static_cast<const void*>(p.w);
    out[1] = p.group_scales;
    out[2] = p.zero_points;
}

// Why the streaming kernel cannot run p ("" when it can): its alignment preconditions.
// The caller then runs the portable kernel, which handles every shape.
const char* stream_refusal(const StreamProblem& p, int cc_major);

// Bytes of split-K workspace p needs on a device with sm_count SMs of compute capability
// cc_major (0: no split, or on sm_90 a split reduced inside a thread block cluster). The
// workspace must be all zero before the first launch; every launch leaves its arrival counters
// zero (the partial sums it leaves behind are never read by another launch).
size_t stream_workspace_bytes(const StreamProblem& p, int sm_count, int cc_major);

// Enqueues the streaming GEMM (stream_refusal(p) must be ""), on env.stream, with workspace
// holding at least stream_workspace_bytes(p, env.sm_count, cc_major) zeroed bytes.
void launch_gemv_stream(const StreamProblem& p, void* workspace, const LaunchEnv& env, int cc_major);

}  // namespace cuda
}  // namespace lowbit
