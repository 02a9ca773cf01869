// w4_kernel.cuh -- one SM90 fused 4-bit-weight GEMM configuration as a CUTLASS 3.x kernel type,
// and its launcher. Included only by the sm90/w4_*.cu files, compiled for sm_90a alone.
//
// The GEMM runs transposed: out^T (N x M) = W8 (N x K) * A^T, so that
//   CUTLASS A = the 4-bit weight codes, N x K, K-major (lowbit's packed rows), loaded by TMA as
//               codes, expanded to INT8 in registers by the mixed-input mainloop
//               (MainloopSm90TmaGmmaRmemAWarpSpecializedMixedInput), then fed to INT8 wgmma with
//               A from registers (SASS: IGMMA...S8.S8 with a register A operand);
//   CUTLASS B = the S8 activations, M x K row-major (= K x M column-major), loaded by TMA to
//               shared memory and read by wgmma from there;
//   CUTLASS D = out^T written column-major: element (j, i) at out[i * ldo + j], i.e. out's rows.
// The expansion, per format (W4Format):
//   S4         DirectConvert: int4b_t -> int8_t (NumericArrayConverter, shifts and byte perms);
//   DgqSigned  ConvertAndScale with a uint32_t scale per (group, channel): each code widened to
//              32 bits, one IMUL by S2, then its low byte taken (uint32 -> int8: truncation), i.e.
//              the low 8 bits of q * S2, lowbit.h's W8;
//   DgqZero    ConvertAndScaleWithZero, uint4b_t codes: q * S2 + (-z * S2) in uint32_t arithmetic,
//              low byte: the low 8 bits of (q - z) * S2.
//   (An int8_t scale, multiplied in int8_t, was tried first: CUTLASS then multiplies byte by byte
//   in the packed registers, extract + multiply + insert per weight, and DGQ ran at half the
//   speed of S4; the 32-bit lanes need no extraction.)
// Integers only before the epilogue, exact int32 accumulation: the bits equal the CPU backend's.
// The epilogue is w8a8_kernel.cuh's EVT with the broadcasts swapped (per-token scale along the
// kernel's N, per-channel scale and bias along its M), in the same float32 order:
//   v = ((float)acc * a_scale[i or 0]) * b_scale[j or 0] + bias[j]    (-fmad=false: no FMA)
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/gemm/kernel/tile_scheduler.hpp>

#include "../cuda_check.h"
#include "cutlass_run.cuh"
#include "w4_config.h"

// CUTLASS 4.2's mixed-input mainloop converts a scaled value back to the MMA type with an
// unqualified call, LayoutAwareConvert(stage, dst), from inside an overload whose lvalue sibling
// is declared after it: that call is resolved by argument-dependent lookup alone, which finds
// cutlass::LayoutAwareConvert only when a tensor holds a cutlass type (int4b_t does; the DGQ
// path's uint32_t lanes -> int8_t does not). This forwarder in cute (the tensors' namespace) makes
// the call resolve; it is enabled only for two fundamental integer types, so it never competes
// with the cutlass overload that lookup already finds.
namespace cute {
template <class EngineIn, class LayoutIn, class EngineOut, class LayoutOut,
          class = std::enable_if_t<std::is_integral_v<typename EngineIn::value_type> &&
                                   std::is_integral_v<typename EngineOut::value_type>>>
CUTLASS_DEVICE void LayoutAwareConvert(Tensor<EngineIn, LayoutIn> const& src, Tensor<EngineOut, LayoutOut>& dst) {
    cutlass::LayoutAwareConvert(src, dst);
}
}  // namespace cute

namespace lowbit {
namespace cuda {
namespace sm90 {

using namespace cute;

struct W4Cooperative {
    using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
    using Epilogue = cutlass::epilogue::TmaWarpSpecializedCooperative;
};
struct W4Pingpong {
    using Kernel = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
    using Epilogue = cutlass::epilogue::TmaWarpSpecialized;
};

// The mainloop's A element for each format: the code type alone, or (codes, scale[, offset]).
template <W4Format F> struct W4Operand;
template <> struct W4Operand<W4Format::S4> { using Type = cutlass::int4b_t; };
template <> struct W4Operand<W4Format::DgqSigned> { using Type = cute::tuple<cutlass::int4b_t, uint32_t>; };
template <> struct W4Operand<W4Format::DgqZero> { using Type = cute::tuple<cutlass::uint4b_t, uint32_t, uint32_t>; };

template <class Schedule, class TileShape, class ClusterShape, W4Format Format, class ElementD>
struct W4Gemm {
    using ElementAcc = int32_t;
    using ElementCompute = float;
    using Code = cute::conditional_t<Format == W4Format::DgqZero, cutlass::uint4b_t, cutlass::int4b_t>;
    static constexpr int kAlignW = 32;                                           // 16 bytes of codes
    static constexpr int kAlignA = 16;                                           // 16 bytes of int8
    static constexpr int kAlignD = 128 / cutlass::sizeof_bits<ElementD>::value;  // 16 bytes

    static constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;
    // Kernel M = output channels, kernel N = tokens.
    using TokenScale = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, bool, _0>>;
    using ChannelScale = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<bool, _0, _0>>;
    using Bias = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<_1, _0, _0>>;
    using Acc = cutlass::epilogue::fusion::Sm90AccFetch;
    using Mul = cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>;
    using Add = cutlass::epilogue::fusion::Sm90Compute<cutlass::plus, ElementD, float, kRound>;
    using TimesA = cutlass::epilogue::fusion::Sm90EVT<Mul, Acc, TokenScale>;
    using TimesB = cutlass::epilogue::fusion::Sm90EVT<Mul, TimesA, ChannelScale>;
    using Fusion = cutlass::epilogue::fusion::Sm90EVT<Add, TimesB, Bias>;

    using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
        cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc, ElementCompute,
        void, cutlass::layout::ColumnMajor, kAlignD,      // no source C
        ElementD, cutlass::layout::ColumnMajor, kAlignD,
        typename Schedule::Epilogue, Fusion>::CollectiveOp;

    using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
        typename W4Operand<Format>::Type, cutlass::layout::RowMajor, kAlignW,
        int8_t, cutlass::layout::ColumnMajor, kAlignA,
        ElementAcc, TileShape, ClusterShape,
        cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
            sizeof(typename CollectiveEpilogue::SharedStorage))>,
        typename Schedule::Kernel>::CollectiveOp;

    using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop,
                                                        CollectiveEpilogue, cutlass::gemm::PersistentScheduler>;
    using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

    static typename Gemm::Arguments arguments(const W4Problem& p) {
        using StrideW = typename Gemm::GemmKernel::StrideA;
        using StrideA = typename Gemm::GemmKernel::StrideB;
        using StrideD = typename Gemm::GemmKernel::StrideD;
        StrideW sw{p.ldw, _1{}, int64_t(0)};
        StrideA sa{p.lda, _1{}, int64_t(0)};
        StrideD sd{_1{}, p.ldo, int64_t(0)};
        typename CollectiveMainloop::Arguments mainloop{};
        mainloop.ptr_A = static_cast<const Code*>(p.w);
        mainloop.dA = sw;
        mainloop.ptr_B = static_cast<const int8_t*>(p.a);
        mainloop.dB = sa;
        if constexpr (Format != W4Format::S4) {
            mainloop.ptr_S = p.group_scales;
            mainloop.dS = typename CollectiveMainloop::StrideScale{_1{}, p.n, int64_t(0)};
            mainloop.group_size = static_cast<int>(p.group);
        }
        if constexpr (Format == W4Format::DgqZero) mainloop.ptr_Z = p.group_offsets;
        typename Gemm::Arguments args{
            cutlass::gemm::GemmUniversalMode::kGemm,
            {static_cast<int>(p.n), static_cast<int>(p.m), static_cast<int>(p.k), 1},
            mainloop,
            {{}, nullptr, sd, static_cast<ElementD*>(p.out), sd}};
        args.epilogue.thread = {
            {                                                                  // TimesB
                {                                                              // TimesA
                    {},                                                        //   acc
                    {p.a_scales, 0.0f, {_0{}, p.a_scale_count != 1, _0{}}},    //   token scale
                    {}},                                                       //   multiplies
                {p.b_scales, 0.0f, {p.b_scale_count != 1, _0{}, _0{}}},        // channel scale
                {}},                                                           // multiplies
            {p.bias, -0.0f, {}},                                               // bias or -0
            {}};                                                               // plus
        args.hw_info.device_id = p.device;
        args.hw_info.sm_count = p.sm_count;
        return args;
    }

    static size_t workspace_bytes(const W4Problem& p) { return Gemm::get_workspace_size(arguments(p)); }

    static bool can_implement(const W4Problem& p) {
        return Gemm::can_implement(arguments(p)) == cutlass::Status::kSuccess;
    }

    static void run(const W4Problem& p, void* workspace, cudaStream_t stream, const char* name) {
        run_cutlass<Gemm>(arguments(p), workspace, stream, p.device, std::string("fused 4-bit GEMM configuration ") + name);
    }
};

template <class Config>
W4Ops make_w4_ops() {
    return W4Ops{&Config::can_implement, &Config::workspace_bytes, &Config::run};
}

// Every format and output type of one configuration.
template <class Schedule, class Tile, class Cluster>
W4Config make_w4_config(const char* name) {
    W4Config c{name, size<2>(Tile{}), {}};
    c.ops[0][0] = make_w4_ops<W4Gemm<Schedule, Tile, Cluster, W4Format::S4, cutlass::half_t>>();
    c.ops[0][1] = make_w4_ops<W4Gemm<Schedule, Tile, Cluster, W4Format::S4, cutlass::bfloat16_t>>();
    // DGQ's group terms arrive by TMA, 4 bytes per channel of the tile and stage; CUTLASS needs
    // each stage's copy to be a multiple of 128 bytes, so tiles of fewer than 32 channels could not
    // take DGQ (they would leave those entries null: the dispatcher picks another configuration).
    if constexpr (size<0>(Tile{}) * 4 % 128 == 0) {
        c.ops[1][0] = make_w4_ops<W4Gemm<Schedule, Tile, Cluster, W4Format::DgqSigned, cutlass::half_t>>();
        c.ops[1][1] = make_w4_ops<W4Gemm<Schedule, Tile, Cluster, W4Format::DgqSigned, cutlass::bfloat16_t>>();
        c.ops[2][0] = make_w4_ops<W4Gemm<Schedule, Tile, Cluster, W4Format::DgqZero, cutlass::half_t>>();
        c.ops[2][1] = make_w4_ops<W4Gemm<Schedule, Tile, Cluster, W4Format::DgqZero, cutlass::bfloat16_t>>();
    }
    return c;
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
