// cluster_barrier.cuh -- thread block cluster barriers without a GPU-wide memory fence (sm_90).
//
// cooperative_groups' cluster.sync() is barrier.cluster.arrive (release semantics) + wait
// (acquire). The release compiles to MEMBAR.ALL.GPU: every thread first waits until all of its
// earlier global memory operations are acknowledged. Measured on the H100 (bench/RESULTS.md,
// twelfth session) that cost 0.3-0.5 us per barrier in the decode kernels even with no stores
// outstanding, and a store round trip more after a block has written its outputs. The cluster
// barriers of lowbit's kernels come in two kinds, and neither needs that fence:
//
// cluster_sync_reads_done() only keeps a block's shared memory alive (or unchanged) until its peers
// have finished reading it: barrier.cluster.arrive.relaxed + wait. A peer's read has completed once
// its value has been used, and the peer used it before arriving, in program order. It makes none of
// this block's writes visible to the peers.
//
// cluster_sync_handover() hands this block's shared-memory writes to the peers' distributed-
// shared-memory reads behind it: a release fence restricted to shared::cta before a relaxed
// arrive, an acquire restricted to shared::cluster after the wait (PTX ISA 8.6). In the SASS that
// is MEMBAR.ALL.CTA + FENCE.VIEW.ASYNC.S, not MEMBAR.ALL.GPU. Global writes are not handed over by
// it (none of its users hands any over: use cluster.sync() for that).
#pragma once

namespace lowbit {
namespace cuda {

__device__ __forceinline__ void cluster_sync_reads_done() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n\tbarrier.cluster.wait.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ void cluster_sync_handover() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile(
        "fence.release.sync_restrict::shared::cta.cluster;\n\t"
        "barrier.cluster.arrive.relaxed.aligned;\n\t"
        "barrier.cluster.wait.aligned;\n\t"
        "fence.acquire.sync_restrict::shared::cluster.cluster;" ::: "memory");
#endif
}

}  // namespace cuda
}  // namespace lowbit
