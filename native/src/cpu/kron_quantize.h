// kron_quantize.h -- the CPU backend's lowbit_kron_quantize (FlatQuant's
// online Kronecker transform fused with per-token quantization).
#pragma once

#include "backend.h"
#include "cpu/kron_quantize_matmul.h"

namespace lowbit {
namespace cpu {

// lowbit_kron_quantize; arguments validated by api.cpp. isa: the context's
// lowbit_cpu_isa level (AVX-512 kernel at LOWBIT_ISA_AVX512_VNNI, portable
// code below it: identical bits); threads: 0 = all hardware threads.
void kron_quantize(const KronQuantizeArgs& args, int isa, int threads);

}  // namespace cpu
}  // namespace lowbit
