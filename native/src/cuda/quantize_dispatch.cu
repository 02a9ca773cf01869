// quantize_dispatch.cu -- CudaBackend::quantize: which kernels a request runs.
//
//   scales given (any granularity)   quantize_apply (validates the scales);
//                                    with a flatten plan and PER_TENSOR / PER_ROW /
//                                    PER_COLUMN scales flatten_apply instead (the row
//                                    kernel of flatten_rows.cu where it fits, else the
//                                    staged or window kernel)
//   PER_ROW computed, flatten plan   flatten_rows.cu's row kernel where it fits
//   PER_ROW / PER_GROUP, computed    quantize_rowwise: one fused kernel, one
//                                    block per row (reduce, scale, quantize);
//                                    PER_ROW on compact aligned rows takes
//                                    quantize_per_token (persistent, next row
//                                    loaded during the current one) unless
//                                    LOWBIT_ROWQUANT=legacy (read once)
//   PER_TENSOR, computed             quantize_tensor_dynamic: one cooperative
//                                    kernel (amax, grid barrier, quantize) when
//                                    the device has cooperative launch, no
//                                    flatten plan, rows 16-byte aligned and
//                                    cols % 8 == 0; else as PER_COLUMN below.
//                                    LOWBIT_TENSOR_QUANT=legacy (read once)
//                                    forces the four-step path.
//   PER_TENSOR (other cases) / PER_COLUMN, computed
//                                    compute_scales (memset + atomicMax amax
//                                    kernel + finalize), then quantize_apply
//
// A flatten plan (lowbit_flatten_quantize: x'[r][j] = x[r][src_index[j]] *
// src_mult[j]) takes the same paths with gathered loads of x (LOWBIT_FLATTEN=legacy:
// no flatten_apply, scalar gathers only).
//
// Everything is enqueued on the context's stream; the host never waits here.
// NaN/Inf inputs and bad given scales are recorded on the device and reported
// by the next synchronize() / read() (see cuda_backend.cu).
#include "cuda_backend.h"
#include "cuda_check.h"

namespace lowbit {
namespace cuda {
namespace {

// Runs <<<1, 1>>> after the operation's kernels, only when the operation has
// given scales or a flatten plan: if the operation owns the status record, it
// copies into it what the message needs from buffers that may be gone by the
// time the host reads the record (the bad scale's value, the plan entry, the
// source column of a non-finite x' column).
__global__ void resolve_findings_kernel(DeviceStatus* st, unsigned long long tag, const float* scales,
                                        const int32_t* src_index, const float* src_mult, int64_t cols,
                                        int64_t src_cols) {
    if (st->op_tag != tag) return;
    st->src_cols = static_cast<unsigned long long>(src_cols);
    if (st->bad_scale != 0) st->scale_bits = __float_as_uint(scales[~st->bad_scale]);
    if (src_index == nullptr) return;
    if (st->nonfinite != 0) {
        unsigned long long j = (~st->nonfinite >> 2) % static_cast<unsigned long long>(cols);
        st->src_col = static_cast<unsigned long long>(static_cast<long long>(src_index[j]));
    }
    if (st->bad_plan != 0) {
        unsigned long long j = ~st->bad_plan;
        st->plan_src = static_cast<unsigned long long>(static_cast<long long>(src_index[j]));
        st->plan_mult = __float_as_uint(src_mult[j]);
    }
}

}  // namespace

void CudaBackend::quantize(const QuantizeArgs& args) {
    activate();
    const bool flatten = args.src_index != nullptr;
    LaunchEnv env = launch_env(flatten ? kOpFlattenQuantize : kOpQuantize, args.cols);
    // Whatever happens below, kernels may have been enqueued that record.
    struct MarkPending {
        CudaBackend* self;
        ~MarkPending() { self->mark_status_pending(); }
    } mark{this};

    if (args.scales_given) {
        if (!launch_flatten_apply(args, env)) launch_quantize_apply(args, env, /*check_scales=*/true);
    } else if (args.granularity == LOWBIT_PER_ROW || args.granularity == LOWBIT_PER_GROUP) {
        if (!launch_flatten_per_token(args, env)) launch_quantize_rowwise(args, env);
    } else if (cooperative_launch_ && quantize_tensor_dynamic_fits(args)) {
        const int64_t slots = quantize_tensor_dynamic_partials(sm_count_);
        DeviceScratch& partials = tensor_partials_;
        std::lock_guard<std::mutex> lock(partials.mutex);  // held until the kernel using it is enqueued
        partials.reserve(static_cast<size_t>(slots) * sizeof(float), 0, "the per-tensor quantize's partial maxima");
        launch_quantize_tensor_dynamic(args, env, static_cast<float*>(partials.ptr), slots);
    } else {  // LOWBIT_PER_TENSOR, LOWBIT_PER_COLUMN
        launch_compute_scales(args, env);
        launch_quantize_apply(args, env, /*check_scales=*/false);
    }
    if (args.scales_given || flatten) {
        resolve_findings_kernel<<<1, 1, 0, env.stream>>>(env.status.status, env.status.tag, args.scales,
                                                         args.src_index, args.src_mult, args.cols, args.src_cols);
        LOWBIT_CUDA_CHECK_LAUNCH("resolve_findings_kernel");
    }
}

}  // namespace cuda
}  // namespace lowbit
