// w8a8_kernel.cuh -- one SM90 W8A8 GEMM configuration as a CUTLASS 3.x kernel type, and its
// launcher. Included only by the sm90/w8a8_*.cu files, which are compiled for sm_90a alone.
//
//   mainloop   CollectiveBuilder, s8 x s8 -> s32 on INT8 wgmma (SASS: IGMMA.64xNx32.S8.S8), TMA
//              loads, TN: A = activations M x K row-major, B = weights N x K row-major (= K x N
//              column-major), stages: as many as fit beside the epilogue's shared memory
//   epilogue   an EVT that is lowbit.h's dequantizing epilogue, node by node in float32:
//                v = ((float)acc * a_scale[i or 0]) * b_scale[j or 0] + bias[j]
//              a_scale: Sm90ColBroadcast with a run-time bool M stride (per token, or one scalar);
//              b_scale: Sm90RowBroadcast with a run-time bool N stride (per channel, or scalar);
//              bias:    Sm90RowBroadcast whose null default is -0.0f: x + (-0.0f) == x for every x
//                       (also +-0 and NaN), so "no bias" changes no bit;
//              then F16 / BF16 rounding to nearest even (NumericConverter round_to_nearest).
//              These files are compiled with -fmad=false, so the multiply and the add are never
//              contracted into an FMA: the output has the CPU backend's bits (NaN payloads aside).
//   scheduler  persistent (Pingpong / Cooperative) or stream-K (Cooperative).
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
#include "w8a8_config.h"

namespace lowbit {
namespace cuda {
namespace sm90 {

using namespace cute;

// Schedules of the two kernel families.
struct Pingpong {
    using Kernel = cutlass::gemm::KernelTmaWarpSpecializedPingpong;
    using Epilogue = cutlass::epilogue::TmaWarpSpecialized;
    using Scheduler = cutlass::gemm::PersistentScheduler;
};
struct Cooperative {
    using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
    using Epilogue = cutlass::epilogue::TmaWarpSpecializedCooperative;
    using Scheduler = cutlass::gemm::PersistentScheduler;
};
struct StreamK {
    using Kernel = cutlass::gemm::KernelTmaWarpSpecializedCooperative;
    using Epilogue = cutlass::epilogue::TmaWarpSpecializedCooperative;
    using Scheduler = cutlass::gemm::StreamKScheduler;
};

template <class Schedule, class TileShape, class ClusterShape, class ElementD>
struct W8A8Gemm {
    using ElementAcc = int32_t;
    using ElementCompute = float;
    static constexpr int kAlignAB = 16;                                        // 16 bytes of int8
    static constexpr int kAlignD = 128 / cutlass::sizeof_bits<ElementD>::value;  // 16 bytes

    static constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;
    using AScale = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float, float, Stride<bool, _0, _0>>;
    using BScale = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, bool, _0>>;
    using Bias = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float, Stride<_0, _1, _0>>;
    using Acc = cutlass::epilogue::fusion::Sm90AccFetch;
    using Mul = cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>;
    using Add = cutlass::epilogue::fusion::Sm90Compute<cutlass::plus, ElementD, float, kRound>;
    using TimesA = cutlass::epilogue::fusion::Sm90EVT<Mul, Acc, AScale>;
    using TimesB = cutlass::epilogue::fusion::Sm90EVT<Mul, TimesA, BScale>;
    using Fusion = cutlass::epilogue::fusion::Sm90EVT<Add, TimesB, Bias>;

    using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
        cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc, ElementCompute,
        void, cutlass::layout::RowMajor, kAlignD,         // no source C
        ElementD, cutlass::layout::RowMajor, kAlignD,
        typename Schedule::Epilogue, Fusion>::CollectiveOp;

    using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp,
        int8_t, cutlass::layout::RowMajor, kAlignAB,
        int8_t, cutlass::layout::ColumnMajor, kAlignAB,
        ElementAcc, TileShape, ClusterShape,
        cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
            sizeof(typename CollectiveEpilogue::SharedStorage))>,
        typename Schedule::Kernel>::CollectiveOp;

    using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, CollectiveMainloop,
                                                        CollectiveEpilogue, typename Schedule::Scheduler>;
    using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

    static typename Gemm::Arguments arguments(const W8A8Problem& p) {
        using StrideA = typename Gemm::GemmKernel::StrideA;
        using StrideB = typename Gemm::GemmKernel::StrideB;
        using StrideD = typename Gemm::GemmKernel::StrideD;
        StrideA sa{p.lda, _1{}, int64_t(0)};
        StrideB sb{p.ldb, _1{}, int64_t(0)};
        StrideD sd{p.ldo, _1{}, int64_t(0)};
        typename Gemm::Arguments args{
            cutlass::gemm::GemmUniversalMode::kGemm,
            {static_cast<int>(p.m), static_cast<int>(p.n), static_cast<int>(p.k), 1},
            {static_cast<const int8_t*>(p.a), sa, static_cast<const int8_t*>(p.b), sb},
            {{}, nullptr, sd, static_cast<ElementD*>(p.out), sd}};
        args.epilogue.thread = {
            {                                                                  // TimesB
                {                                                              // TimesA
                    {},                                                        //   acc
                    {p.a_scales, 0.0f, {p.a_scale_count != 1, _0{}, _0{}}},    //   a_scale
                    {}},                                                       //   multiplies
                {p.b_scales, 0.0f, {_0{}, p.b_scale_count != 1, _0{}}},        // b_scale
                {}},                                                           // multiplies
            {p.bias, -0.0f, {}},                                               // bias or -0
            {}};                                                               // plus
        args.hw_info.device_id = p.device;
        args.hw_info.sm_count = p.sm_count;
        return args;
    }

    static size_t workspace_bytes(const W8A8Problem& p) { return Gemm::get_workspace_size(arguments(p)); }

    // Whether CUTLASS accepts the problem (alignment of K, N, the strides); no launch.
    static bool can_implement(const W8A8Problem& p) {
        return Gemm::can_implement(arguments(p)) == cutlass::Status::kSuccess;
    }

    static void run(const W8A8Problem& p, void* workspace, cudaStream_t stream, const char* name) {
        run_cutlass<Gemm>(arguments(p), workspace, stream, p.device, std::string("GEMM configuration ") + name);
    }
};

// Defines the three entry points of one configuration for one output type.
template <class Config>
W8A8Ops make_ops() {
    return W8A8Ops{&Config::can_implement, &Config::workspace_bytes, &Config::run};
}

}  // namespace sm90
}  // namespace cuda
}  // namespace lowbit
