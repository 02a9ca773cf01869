// occupancy.cu -- resident_blocks_per_sm: how many blocks of a kernel one SM of the current
// device holds at once (cudaOccupancyMaxActiveBlocksPerMultiprocessor), asked once per
// (device, kernel, block size, dynamic shared memory) and cached, for the launchers that size persistent or cooperative
// grids to the resident blocks (quantize_per_token.cu, quantize_tensor_dynamic.cu).
#include <mutex>
#include <vector>

#include "cuda_backend.h"
#include "cuda_check.h"

namespace lowbit {
namespace cuda {

int resident_blocks_per_sm(const void* kernel, int threads, size_t dynamic_smem) {
    static std::mutex mutex;
    struct Entry {
        int device;
        const void* kernel;
        int threads;
        size_t smem;
        int blocks;
    };
    static std::vector<Entry> cache;
    int device = 0;
    LOWBIT_CUDA_CHECK(cudaGetDevice(&device));
    std::lock_guard<std::mutex> lock(mutex);
    for (const Entry& e : cache)
        if (e.device == device && e.kernel == kernel && e.threads == threads && e.smem == dynamic_smem) return e.blocks;
    int blocks = 0;
    LOWBIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, dynamic_smem));
    cache.push_back(Entry{device, kernel, threads, dynamic_smem, blocks});
    return blocks;
}

}  // namespace cuda
}  // namespace lowbit
