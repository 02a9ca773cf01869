// scratch.h -- a per-thread, reusable, 64-byte aligned scratch area.
//
// The GEMM driver needs a few kilobytes to a few hundred kilobytes per task
// (unpacked INT4 rows, the int32 tile strip). Allocating that per task would
// hit malloc (and mmap page faults for large blocks) on every call, so each
// thread keeps its buffer and only grows it. Baseline sources only.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace lowbit {
namespace cpu {
namespace {

class Scratch {
public:
    Scratch() = default;
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() { std::free(ptr_); }

    // At least `bytes` bytes, 64-byte aligned; the contents are not kept.
    void* get(size_t bytes) {
        if (bytes > size_) {
            std::free(ptr_);
            ptr_ = nullptr;
            size_ = 0;
            size_t rounded = (bytes + 4095) & ~size_t(4095);
            ptr_ = std::aligned_alloc(64, rounded);
            if (ptr_ == nullptr) throw std::bad_alloc();
            size_ = rounded;
        }
        return ptr_;
    }

private:
    void* ptr_ = nullptr;
    size_t size_ = 0;
};

}  // namespace
}  // namespace cpu
}  // namespace lowbit
