// cluster_barrier.cuh -- a thread block cluster barrier without the memory fence (sm_90).
//
// cooperative_groups' cluster.sync() is barrier.cluster.arrive (release semantics) + wait
// (acquire). The release compiles to MEMBAR.ALL.GPU: every thread first waits until all of its
// earlier global stores are acknowledged, so a barrier after a block has written its outputs
// costs a store round trip on the block's tail. That is what a barrier handing shared data to the
// peers needs, but not one that only keeps a block's shared memory alive (or unchanged) until its
// peers have finished reading it: a peer's read has completed once its value has been used, and
// the peer used it before arriving, in program order.
//
// cluster_sync_reads_done() is that second kind: barrier.cluster.arrive.relaxed + wait. It makes
// none of this block's writes visible to the peers -- hand data over with cluster.sync().
#pragma once

namespace lowbit {
namespace cuda {

__device__ __forceinline__ void cluster_sync_reads_done() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.relaxed.aligned;\n\tbarrier.cluster.wait.aligned;" ::: "memory");
#endif
}

}  // namespace cuda
}  // namespace lowbit
