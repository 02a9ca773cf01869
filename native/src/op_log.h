// op_log.h -- which buffers the previous operation on a CUDA context's stream used.
//
// A CUDA kernel launched with programmatic dependent launch (cuda/pdl.cuh) may start while the
// kernel in front of it is still running. Before its dependency wait it may read only memory
// that kernel cannot be writing: the weight-streaming GEMM requests its first weights early
// only when no buffer it reads early was an argument (in any role) of the previous operation.
//
// api.cpp records every buffer argument of each operation that puts work on a CUDA stream
// (stream_op), holding the log from the first buffer it checks until the operation's work is
// enqueued, so that operations from several threads enter the log in their stream order. An
// operation that fails is added to the previous one's buffers instead of replacing them (it may
// have launched part of its work). Two operations back is always safe: a lowbit kernel signals
// its dependents only after its own dependency wait, so when a kernel starts, every kernel two
// places before it on the stream has completed.
#pragma once

#include <algorithm>
#include <mutex>
#include <vector>

namespace lowbit {

class OperationLog {
public:
    // An operation starts recording: holds the log until finish().
    void begin() {
        mutex_.lock();
        current_.clear();
    }

    // The operation uses this buffer (any role). Between begin() and finish().
    void use(const void* buffer) { current_.push_back(buffer); }

    // The operation has put its work on the stream (completed = true) or failed part way; releases the log.
    void finish(bool completed) {
        if (completed) previous_.swap(current_);
        else previous_.insert(previous_.end(), current_.begin(), current_.end());
        current_.clear();
        mutex_.unlock();
    }

    // Whether the previous operation on the stream used this buffer. Between begin() and finish().
    bool used_by_previous(const void* buffer) const {
        return buffer != nullptr && std::find(previous_.begin(), previous_.end(), buffer) != previous_.end();
    }

private:
    std::mutex mutex_;
    std::vector<const void*> current_, previous_;
};

}  // namespace lowbit
