// device_status.cuh -- the per-context device-side error word.
//
// The CUDA backend never waits for the device inside lowbit_quantize, so a
// kernel that finds a NaN/Inf input, a given scale that is not finite or
// <= 0, or an invalid flatten plan entry cannot fail the call. It records the finding here instead, and
// CudaBackend::check_device_status() (run by synchronize() and read()) copies
// the record to the host, resets it and throws the matching lowbit::Error.
//
// Which finding is reported, deterministically:
//   * the FIRST failing operation in stream order: every recording kernel
//     carries the tag of its host call; the first tag to claim `op_tag`
//     (atomicCAS from 0) owns the record and later operations leave it alone.
//     One context = one stream, so all kernels of an earlier operation have
//     finished before a later one starts; only blocks of the same operation
//     race for the record, and they carry the same tag.
//   * within that operation, the SMALLEST index, the one a sequential CPU
//     loop would stop at: indices are stored complemented (~index) and merged
//     with atomicMax, so that an all-zero record means "nothing recorded".
//   * the message's details that live in the operation's buffers (a bad
//     scale's value, a plan entry, the source column behind a flattened
//     column) are copied in by one tiny kernel at the end of the operation
//     (quantize_dispatch.cu), so the host never reads a user buffer later.
#pragma once

#include <cstdint>

namespace lowbit {
namespace cuda {

// Operation codes stored in DeviceStatus::op (for the message).
enum StatusOp : unsigned long long { kOpNone = 0, kOpQuantize = 1, kOpFlattenQuantize = 2, kOpBitplaneQuantize = 3,
                                 kOpKronQuantize = 4 };

// A non-finite finding is stored as the key (index << 2 | class), so that the
// smallest key is the smallest index and the class says what was found.
enum NonfiniteClass : unsigned { kNaN = 0, kPosInf = 1, kNegInf = 2 };

// Lives in device memory, one per context; 8-byte fields only, so that every
// field can be updated with a 64-bit atomic.
struct DeviceStatus {
    unsigned long long op_tag;     // tag of the operation that owns the record, 0 = none
    unsigned long long op;         // StatusOp of that operation
    unsigned long long cols;       // its column count, to split a linear index into (row, column)
    unsigned long long nonfinite;  // ~((row * cols + col) << 2 | NonfiniteClass) of the first NaN/Inf, 0 = none
    unsigned long long bad_scale;  // ~(index) of the first given scale that is not finite or <= 0, 0 = none
    unsigned long long bad_plan;   // ~(j) of the first invalid flatten plan entry, 0 = none
    // Filled in by resolve_findings_kernel at the end of the operation, while
    // its buffers are certainly alive (for the message only):
    unsigned long long src_col;    // flatten: x's column behind the non-finite x' column
    unsigned long long plan_src;   // flatten: src_index[j] of the bad plan entry (as int64)
    unsigned long long plan_mult;  // flatten: src_mult[j] bits of the bad plan entry
    unsigned long long scale_bits; // the bad given scale's bits
    unsigned long long src_cols;   // flatten: x's column count
};

// What a kernel needs to record into the context's status (passed by value).
struct StatusRef {
    DeviceStatus* status;
    unsigned long long tag;   // unique per host call on this context, never 0
    unsigned long long op;
    unsigned long long cols;
};

constexpr unsigned long long kNoIndex = ~0ull;  // "no finding" in a thread-local minimum

#if defined(__CUDACC__)
// Records index (a linear element index or a scale index) in *slot, the field
// `nonfinite` or `bad_scale` of ref.status. Call at most once per thread with
// the thread's smallest finding: this is the error path, atomics are fine.
__device__ inline void record_finding(const StatusRef& ref, unsigned long long DeviceStatus::*slot,
                                      unsigned long long index) {
    DeviceStatus* s = ref.status;
    unsigned long long owner = atomicCAS(&s->op_tag, 0ull, ref.tag);
    if (owner != 0ull && owner != ref.tag) return;  // an earlier operation failed first
    atomicExch(&s->op, ref.op);                     // the same values from every writer
    atomicExch(&s->cols, ref.cols);
    atomicMax(&(s->*slot), ~index);
}
#endif

}  // namespace cuda
}  // namespace lowbit
