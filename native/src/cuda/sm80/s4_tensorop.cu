// s4_tensorop.cu -- the native INT4 tensor-core GEMM: a CUTLASS 2.x device GEMM on
// mma.sync.aligned.m16n8k64.row.col.s32.s4.s4.s32 (Ampere / Ada), W4A4 with an exact int32 result.
//
//   operands     A = activations M x K, B = weights N x K, both packed S4 and K-contiguous:
//                cutlass::int4b_t, A RowMajor, B ColumnMajor (a K x N column-major matrix is our
//                N x K row-major one). lowbit.h's nibble order -- element c of a row in byte c/2,
//                low nibble when c is even, two's complement -- is exactly how CUTLASS stores
//                int4b_t arrays (subbyte_reference.h: element i at bit 4 * (i % 2) of byte i / 2)
//                and how the MMA reads a 32-bit register (element 0 in bits 0..3), so the packed
//                buffers go to the kernel as they are.
//   tiles        threadblock 128 x 128 x 128, warps 64 x 64 x 128 (4 warps), instruction 16 x 8 x
//                64, 4 cp.async stages: 64 KiB of shared memory, within sm_86/sm_89's 99 KiB.
//   alignment    128-bit accesses: 32 nibbles of A and B, 4 int32 of C (s4_tensorop.h lists the
//                rules; CUTLASS's predicates guard the start of each vector only, so the rules are
//                checked here, not left to it).
//   accumulate   CUTLASS's sm_80 INT4 MMA is the saturating form (.satfinite; there is no other
//                OpMultiplyAdd specialization for s4). With |a|, |b| <= 8 and K < 2^25 every
//                partial sum is below 2^31 in magnitude, so it never saturates and the int32
//                result is the exact sum, as lowbit.h defines it.
//   epilogue     LinearCombination with ScaleType::Nothing: the accumulator is stored as it is
//                (no alpha, no source C). lowbit's dequantizing epilogue runs afterwards on it
//                (gemm_sm80_s4.cu), so the float outputs are the CPU backend's bits.
//
// This file is compiled for sm_80 and sm_89 SASS and compute_80 PTX only (no sm_90 SASS): on an
// H100 the driver must JIT-compile the compute_80 PTX, and s4_kernel_attributes() shows it
// (binaryVersion 90 from ptxVersion 80). Hopper has no fast INT4 MMA (it is emulated), so this is
// a correctness path there; the dispatcher picks it by itself only on compute capability 8.x.
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/thread/linear_combination.h>
#include <cutlass/gemm/device/gemm.h>
#include <cutlass/numeric_types.h>

#include <sstream>

#include "../cuda_check.h"
#include "s4_tensorop.h"

namespace lowbit {
namespace cuda {
namespace sm80 {
namespace {

using Element = cutlass::int4b_t;
using Acc = int32_t;
constexpr int kAlignAB = 128 / cutlass::sizeof_bits<Element>::value;  // 32 nibbles
constexpr int kAlignC = 128 / cutlass::sizeof_bits<Acc>::value;       // 4 int32
using ThreadblockShape = cutlass::gemm::GemmShape<128, 128, 128>;
using WarpShape = cutlass::gemm::GemmShape<64, 64, 128>;
using InstructionShape = cutlass::gemm::GemmShape<16, 8, 64>;
constexpr int kStages = 4;

using StoreAccumulator =
    cutlass::epilogue::thread::LinearCombination<Acc, kAlignC, Acc, Acc, cutlass::epilogue::thread::ScaleType::Nothing>;

using Gemm = cutlass::gemm::device::Gemm<
    Element, cutlass::layout::RowMajor, Element, cutlass::layout::ColumnMajor, Acc, cutlass::layout::RowMajor, Acc,
    cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80, ThreadblockShape, WarpShape, InstructionShape,
    StoreAccumulator, cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<1>, kStages, kAlignAB, kAlignAB,
    false, cutlass::arch::OpMultiplyAddSaturate>;
using Kernel = Gemm::GemmKernel;

constexpr int64_t kMaxK = int64_t(1) << 25;  // K * 8 * 8 < 2^31: the saturating MMA never saturates
constexpr int64_t kMaxGridY = 65535;

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The CUTLASS arguments for p; int4b_t pointers address the packed bytes, as CUTLASS's own tensors do.
Gemm::Arguments arguments(const S4Problem& p) {
    const cutlass::gemm::GemmCoord size(static_cast<int>(p.m), static_cast<int>(p.n), static_cast<int>(p.k));
    Gemm::TensorRefA a(static_cast<const Element*>(p.a), cutlass::layout::RowMajor(p.lda));
    Gemm::TensorRefB b(static_cast<const Element*>(p.b), cutlass::layout::ColumnMajor(p.ldb));
    Gemm::TensorRefD c(p.c, cutlass::layout::RowMajor(p.ldc));
    return Gemm::Arguments(size, a, b, c, c, StoreAccumulator::Params(), 1);
}

}  // namespace

std::string s4_refusal(const S4Problem& p) {
    std::ostringstream s;
    if (p.m > INT32_MAX || p.n > INT32_MAX) s << "M and N must be below 2^31";
    else if (p.k >= kMaxK) s << "K=" << p.k << " is not below 2^25 (the INT4 MMA accumulates with saturation)";
    else if (p.k % kAlignAB != 0) s << "K=" << p.k << " is not a multiple of " << kAlignAB;
    else if (p.n % kAlignC != 0) s << "N=" << p.n << " is not a multiple of " << kAlignC;
    else if ((p.n + ThreadblockShape::kN - 1) / ThreadblockShape::kN > kMaxGridY)
        s << "N=" << p.n << " is above " << kMaxGridY * ThreadblockShape::kN;
    else if (p.lda % kAlignAB != 0) s << "lda=" << p.lda << " is not a multiple of " << kAlignAB;
    else if (p.ldb % kAlignAB != 0) s << "ldb=" << p.ldb << " is not a multiple of " << kAlignAB;
    else if (p.ldc % kAlignC != 0) s << "ldc=" << p.ldc << " is not a multiple of " << kAlignC;
    else if (!aligned16(p.a) || !aligned16(p.b) || !aligned16(p.c)) s << "the operands are not 16-byte aligned";
    return s.str();
}

void run_s4_gemm(const S4Problem& p, cudaStream_t stream) {
    const Gemm::Arguments args = arguments(p);
    const cutlass::Status st = Gemm::can_implement(args);
    if (st != cutlass::Status::kSuccess)
        throw Error(LOWBIT_ERR_INTERNAL, std::string("the sm80 INT4 GEMM refused a checked problem: ") +
                                             cutlassGetStatusString(st));
    // What Gemm::initialize and Gemm::run do, launched here so that a failure keeps CUDA's own
    // message (Gemm::run folds every launch error into kErrorInternal).
    cutlass::gemm::threadblock::GemmIdentityThreadblockSwizzle<1> swizzle;
    const cutlass::gemm::GemmCoord tile(ThreadblockShape::kM, ThreadblockShape::kN, ThreadblockShape::kK);
    const cutlass::gemm::GemmCoord tiles = swizzle.get_tiled_shape(args.problem_size, tile, 1);
    const Kernel::Params params(args.problem_size, tiles, args.ref_A.non_const_ref(), args.ref_B.non_const_ref(),
                                args.ref_C.non_const_ref(), args.ref_D, args.epilogue, nullptr);
    constexpr int smem = int(sizeof(Kernel::SharedStorage));
    if (smem >= (48 << 10))
        check(cudaFuncSetAttribute(cutlass::Kernel<Kernel>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
              "cudaFuncSetAttribute(max dynamic shared memory) of the sm80 INT4 GEMM");
    cutlass::Kernel<Kernel><<<swizzle.get_grid_shape(tiles), Kernel::kThreadCount, smem, stream>>>(params);
    LOWBIT_CUDA_CHECK_LAUNCH("the sm80 INT4 GEMM (cutlass::Kernel<s4 x s4 -> s32, 128x128x128, 16x8x64>)");
}

cudaFuncAttributes s4_kernel_attributes() {
    cudaFuncAttributes attr{};
    check(cudaFuncGetAttributes(&attr, cutlass::Kernel<Kernel>), "cudaFuncGetAttributes of the sm80 INT4 GEMM");
    return attr;
}

}  // namespace sm80
}  // namespace cuda
}  // namespace lowbit
