// thread_pool.cpp -- a small fork-join pool for parallel_for.
//
// Design
//   * Workers are std::threads created once (lazily, hardware_threads() - 1 of
//     them) and kept for the life of the process: no thread is created per call.
//   * A call publishes a Job (on the caller's stack) in a list guarded by one
//     mutex, wakes the workers, and then works on its own job too. Tasks are
//     claimed with an atomic fetch_add, so the caller and the helpers share
//     them dynamically.
//   * Job::max_helpers caps how many workers may join one job: that is how a
//     context's thread count (lowbit_context_set_threads) is honoured. Several
//     callers at once simply have several jobs in the list.
//   * The caller returns only after every helper has left its job (helpers is
//     decremented under the mutex, and that is the helper's last touch of the
//     Job), so a Job on the caller's stack is never used after it returns.
//   * An idle worker spins briefly before it sleeps on the condition variable:
//     decode-style workloads issue many short calls back to back, and waking a
//     sleeping thread costs tens of microseconds.
//   * The pool is intentionally never destroyed (workers are detached at
//     exit): a JVM may call into the library from threads that outlive static
//     destructors.
#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LOWBIT_CPU_RELAX() _mm_pause()
#else
#define LOWBIT_CPU_RELAX() ((void)0)
#endif

namespace lowbit {
namespace cpu {

namespace {

struct Job {
    const std::function<void(int64_t)>* fn = nullptr;
    int64_t n_tasks = 0;
    std::atomic<int64_t> next{0};  // next unclaimed task
    int max_helpers = 0;           // pool workers allowed to join
    int helpers = 0;               // workers inside this job (pool mutex)
    std::mutex error_mutex;
    std::exception_ptr error;      // first exception thrown by a task

    bool has_work() const { return next.load(std::memory_order_relaxed) < n_tasks; }

    // Claims and runs tasks until none are left.
    void work() {
        for (;;) {
            int64_t t = next.fetch_add(1, std::memory_order_relaxed);
            if (t >= n_tasks) return;
            try {
                (*fn)(t);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
                next.store(n_tasks, std::memory_order_relaxed);  // skip the rest
            }
        }
    }
};

class Pool {
public:
    static Pool& instance() {
        static Pool* pool = new Pool();  // never destroyed, see the file comment
        return *pool;
    }

    int workers() const { return static_cast<int>(threads_.size()); }

    void run(int64_t n_tasks, int helpers, const std::function<void(int64_t)>& fn) {
        Job job;
        job.fn = &fn;
        job.n_tasks = n_tasks;
        job.max_helpers = helpers;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.push_back(&job);
            pending_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();

        job.work();  // the caller works too

        {
            std::unique_lock<std::mutex> lock(mutex_);
            jobs_.erase(std::find(jobs_.begin(), jobs_.end(), &job));
            pending_.fetch_sub(1, std::memory_order_relaxed);
            done_.wait(lock, [&] { return job.helpers == 0; });
        }
        if (job.error) std::rethrow_exception(job.error);
    }

private:
    Pool() {
        int n = hardware_threads() - 1;
        for (int i = 0; i < n; ++i) {
            threads_.emplace_back([this] { worker_loop(); });
            threads_.back().detach();
        }
    }

    // A job that still has unclaimed tasks and room for one more helper.
    Job* find_job() {
        for (Job* j : jobs_)
            if (j->helpers < j->max_helpers && j->has_work()) return j;
        return nullptr;
    }

    // Spin for up to ~kSpinMicros waiting for a job to be published.
    void spin_for_work() {
        using clock = std::chrono::steady_clock;
        constexpr int kSpinMicros = 200;
        auto start = clock::now();
        for (int i = 0;; ++i) {
            if (pending_.load(std::memory_order_acquire) > 0) return;
            LOWBIT_CPU_RELAX();
            if ((i & 255) == 255 && clock::now() - start > std::chrono::microseconds(kSpinMicros)) return;
        }
    }

    void worker_loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            Job* job = find_job();
            if (job == nullptr) {
                lock.unlock();
                spin_for_work();
                lock.lock();
                job = find_job();
                if (job == nullptr) {
                    wake_.wait(lock, [&] { return (job = find_job()) != nullptr; });
                }
            }
            ++job->helpers;
            lock.unlock();
            job->work();
            lock.lock();
            if (--job->helpers == 0) done_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;   // new job published
    std::condition_variable done_;   // a job lost its last helper
    std::vector<Job*> jobs_;         // published jobs (mutex_)
    std::atomic<int> pending_{0};    // jobs_.size(), readable without the lock
    std::vector<std::thread> threads_;
};

}  // namespace

int hardware_threads() {
    static const int n = std::max(1u, std::thread::hardware_concurrency());
    return n;
}

void parallel_for(int64_t n_tasks, int threads, const std::function<void(int64_t)>& fn) {
    if (n_tasks <= 0) return;
    if (threads <= 0) threads = hardware_threads();
    int64_t useful = std::min<int64_t>(threads, n_tasks);
    if (useful <= 1 || hardware_threads() <= 1) {
        for (int64_t t = 0; t < n_tasks; ++t) fn(t);  // tiny problem: inline
        return;
    }
    Pool& pool = Pool::instance();
    int helpers = static_cast<int>(std::min<int64_t>(useful - 1, pool.workers()));
    pool.run(n_tasks, helpers, fn);
}

}  // namespace cpu
}  // namespace lowbit
