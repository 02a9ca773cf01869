// flatten_kernels.h -- the flatten-and-quantize kernels, for the launchers (launch_flatten_apply
// and launch_flatten_per_token in flatten_apply.cu, declared in cuda_backend.h) and for harnesses
// that compare them in one process.
//
//   launch_flatten_rows    flatten_rows.cu: a row at a time, the row in registers, identity
//                          units streamed and the rest gathered from a shared copy of the row
//                          (F16/BF16, given PER_TENSOR / PER_ROW scales or computed PER_ROW; the
//                          default where it fits)
//   launch_flatten_staged  flatten_staged.cu: rows staged in shared memory, gathers from there
//                          (x rows 16-byte aligned; the default)
//   launch_flatten_window  flatten_apply.cu: a thread per unit with register windows of x
//                          (every layout; LOWBIT_FLATTEN=window picks it)
//
// The staged and window kernels take PER_TENSOR / PER_ROW / PER_COLUMN given scales and a flatten plan (a.src_index set,
// a.rows, a.cols > 0) and return false, launching nothing, when they do not take the request.
#pragma once

#include "cuda_backend.h"

namespace lowbit {
namespace cuda {

bool launch_flatten_rows(const QuantizeArgs& a, const LaunchEnv& env);
bool launch_flatten_staged(const QuantizeArgs& a, const LaunchEnv& env);
bool launch_flatten_window(const QuantizeArgs& a, const LaunchEnv& env);

}  // namespace cuda
}  // namespace lowbit
