// ops.h -- the CPU backend's operations, called by CpuBackend (cpu_backend.cpp).
// Arguments are already validated by api.cpp; `threads` is the context's
// thread count (0 = all hardware threads), `isa` its lowbit_cpu_isa level.
#pragma once

#include "backend.h"

namespace lowbit {
namespace cpu {

void quantize(const QuantizeArgs& args, int threads);
void gemm(const GemmArgs& args, int isa, int threads);
void dequantize(const DequantArgs& args, int threads);
void dense_gemm(const DenseGemmArgs& args, int threads);

}  // namespace cpu
}  // namespace lowbit
