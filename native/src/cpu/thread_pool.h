// thread_pool.h -- one process-wide pool of worker threads shared by all CPU
// contexts.
#pragma once

#include <cstdint>
#include <functional>

namespace lowbit {
namespace cpu {

// Hardware threads of this machine (>= 1).
int hardware_threads();

// Runs fn(task) once for every task in [0, n_tasks) and returns when all have
// finished. At most `threads` threads work on it: the calling thread plus up to
// threads - 1 pool workers (threads <= 0 means all hardware threads). Tasks are
// handed out dynamically (an atomic counter), so uneven tasks balance out.
// Several threads may call parallel_for at the same time; their jobs share the
// workers. With one task or one thread the tasks run inline on the caller.
// An exception thrown by a task is rethrown here (the first one, after all
// running tasks have stopped; tasks not yet started are skipped).
// fn must not call parallel_for itself.
void parallel_for(int64_t n_tasks, int threads, const std::function<void(int64_t)>& fn);

}  // namespace cpu
}  // namespace lowbit
