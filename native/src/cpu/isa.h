// isa.h -- run-time instruction-set selection for the CPU backend.
#pragma once

namespace lowbit {
namespace cpu {

// The ISA level a new CPU context starts with: cpu_isa_best(), lowered (never
// raised) by the environment variable LOWBIT_CPU_ISA=scalar|avx2|avx512vnni.
int cpu_isa_default();

}  // namespace cpu
}  // namespace lowbit
