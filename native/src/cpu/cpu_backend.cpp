// cpu_backend.cpp -- the CPU implementation of lowbit::Backend.
//
// Memory is ordinary 256-byte aligned host memory; transfers are memcpy and
// synchronize has nothing to wait for (every operation finishes before it
// returns). The ISA level and thread count are per context and may be changed
// while other threads use the context (atomics; a call uses the values it
// read when it started).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "backend.h"
#include "cpu/bitplane.h"
#include "cpu/dgq_kernels.h"
#include "cpu/isa.h"
#include "cpu/kron_quantize.h"
#include "cpu/ops.h"

namespace lowbit {

namespace {

class CpuBackend final : public Backend {
public:
    CpuBackend() : isa_(cpu::cpu_isa_default()), threads_(0) {}

    int kind() const override { return LOWBIT_BACKEND_CPU; }

    void* alloc(int64_t bytes) override {
        // aligned_alloc wants a multiple of the alignment.
        const uint64_t rounded = (static_cast<uint64_t>(bytes) + 255) & ~uint64_t(255);
        void* p = rounded < static_cast<uint64_t>(bytes) ? nullptr : std::aligned_alloc(256, rounded);
        if (p == nullptr)
            throw Error(LOWBIT_ERR_OUT_OF_MEMORY,
                        "cannot allocate " + std::to_string(bytes) + " bytes of host memory");
        return p;
    }
    void release(void* p) noexcept override { std::free(p); }

    void write(void* dst, const void* host_src, int64_t bytes) override { std::memcpy(dst, host_src, bytes); }
    void read(void* host_dst, const void* src, int64_t bytes) override { std::memcpy(host_dst, src, bytes); }
    void copy(void* dst, const void* src, int64_t bytes) override { std::memmove(dst, src, bytes); }
    void synchronize() override {}

    void quantize(const QuantizeArgs& a) override { cpu::quantize(a, threads_.load(std::memory_order_relaxed)); }
    void gemm(const GemmArgs& a) override {
        cpu::gemm(a, isa_.load(std::memory_order_relaxed), threads_.load(std::memory_order_relaxed));
    }
    void dequantize(const DequantArgs& a) override {
        cpu::dequantize(a, threads_.load(std::memory_order_relaxed));
    }
    void gemm_dgq(const DgqGemmArgs& a) override {
        cpu::gemm_dgq(a, isa_.load(std::memory_order_relaxed), threads_.load(std::memory_order_relaxed));
    }

    void bitplane_quantize(const BitplaneQuantizeArgs& a) override {
        cpu::bitplane_quantize(a, threads_.load(std::memory_order_relaxed));
    }
    void bitplane_gemm(const BitplaneGemmArgs& a) override {
        cpu::bitplane_gemm(a, isa_.load(std::memory_order_relaxed), threads_.load(std::memory_order_relaxed));
    }

    void dense_gemm(const DenseGemmArgs& a) override { cpu::dense_gemm(a, threads_.load(std::memory_order_relaxed)); }

    void kron_quantize(const KronQuantizeArgs& a) override {
        cpu::kron_quantize(a, isa_.load(std::memory_order_relaxed), threads_.load(std::memory_order_relaxed));
    }

    // api.cpp has checked 0 <= isa <= cpu_isa_best() and 0 <= threads <= 4096.
    void set_cpu_isa(int isa) override { isa_.store(isa, std::memory_order_relaxed); }
    void set_threads(int threads) override { threads_.store(threads, std::memory_order_relaxed); }

private:
    std::atomic<int> isa_;
    std::atomic<int> threads_;  // 0 = all hardware threads
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace lowbit
