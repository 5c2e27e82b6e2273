// The pool behind run_parallel. Callers publish a Job (a task, a count and an atomic index of the
// next unclaimed call) in a queue; sleeping workers are woken, attach to the oldest job and claim
// indices until none is left, as does the caller. The caller then removes its job from the queue
// and waits until no worker is attached to it, so the job (on the caller's stack) outlives every
// use. Several callers (Python threads running transforms at once) share the workers.
//
// Workers run a job's calls with the caller's floating-point control word (x86 MXCSR: rounding,
// flush-to-zero), so a split transform computes exactly what one thread would.
//
// The pool is allocated once and never destroyed: detached workers may still be waiting on its
// condition variable when the process exits. A forked child gets a new pool on first use (its
// parent's workers do not exist there).
#include "thread_pool.hpp"

#include <pthread.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>  // _mm_getcsr / _mm_setcsr
#define HAILO_ORT_HAVE_MXCSR 1
#endif

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace hailo_ort {
namespace {

struct Job {
  void (*task)(void*, std::size_t);
  void* ctx;
  std::size_t count;
#if defined(HAILO_ORT_HAVE_MXCSR)
  unsigned int mxcsr = 0;  // the caller's rounding / flush-to-zero modes, used by the workers
#endif
  std::atomic<std::size_t> next{0};
  int attached = 0;           // workers inside claim(); guarded by Pool::mutex
  std::exception_ptr error;   // the first exception; guarded by Pool::mutex
};

class Pool {
 public:
  void run(Job& job, std::size_t max_workers) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      start_workers(max_workers);
      queue_.push_back(&job);
    }
    for (std::size_t k = 0; k < max_workers; ++k) wake_.notify_one();  // not every idle worker
    claim(job);
    std::unique_lock<std::mutex> lock(mutex_);
    const auto it = std::find(queue_.begin(), queue_.end(), &job);
    if (it != queue_.end()) queue_.erase(it);
    done_.wait(lock, [&job] { return job.attached == 0; });
    if (job.error) std::rethrow_exception(job.error);
  }

  std::size_t workers() {
    std::lock_guard<std::mutex> lock(mutex_);
    return workers_;
  }

 private:
  void claim(Job& job) {
    for (std::size_t k; (k = job.next.fetch_add(1, std::memory_order_relaxed)) < job.count;) {
      try {
        job.task(job.ctx, k);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!job.error) job.error = std::current_exception();
      }
    }
  }

  // Called with the mutex held. A thread that cannot be started is simply not there: the
  // callers claim its share.
  void start_workers(std::size_t want) {
    while (workers_ < want) {
      try {
        std::thread(&Pool::work, this).detach();
      } catch (const std::exception&) {
        return;
      }
      ++workers_;
    }
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return !queue_.empty(); });
      Job& job = *queue_.front();
      ++job.attached;
      lock.unlock();
#if defined(HAILO_ORT_HAVE_MXCSR)
      const unsigned int own = _mm_getcsr();
      _mm_setcsr(job.mxcsr);  // compute as the caller's thread would
      claim(job);
      _mm_setcsr(own);
#else
      claim(job);
#endif
      lock.lock();
      // every index is claimed now: later workers need not look at this job
      const auto it = std::find(queue_.begin(), queue_.end(), &job);
      if (it != queue_.end()) queue_.erase(it);
      if (--job.attached == 0) done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::deque<Job*> queue_;
  std::size_t workers_ = 0;
};

std::atomic<Pool*> g_pool{nullptr};
std::mutex g_pool_create;

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr) return *p;
  std::lock_guard<std::mutex> lock(g_pool_create);
  p = g_pool.load(std::memory_order_acquire);
  if (p == nullptr) {
    static const bool registered = [] {
      // in a forked child the parent's pool (and its workers) is left alone, unused
      pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr, std::memory_order_release); });
      return true;
    }();
    (void)registered;
    p = new Pool();  // never deleted (see the top of this file)
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

void run_parallel(std::size_t count, std::size_t max_workers, void (*task)(void*, std::size_t),
                  void* ctx) {
  if (count == 0) return;
  if (count == 1 || max_workers == 0) {
    for (std::size_t k = 0; k < count; ++k) task(ctx, k);
    return;
  }
  Job job;
  job.task = task;
  job.ctx = ctx;
  job.count = count;
#if defined(HAILO_ORT_HAVE_MXCSR)
  job.mxcsr = _mm_getcsr();
#endif
  pool().run(job, std::min(max_workers, count - 1));
}

std::size_t pool_workers() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  return p == nullptr ? 0 : p->workers();
}

}  // namespace hailo_ort
