// thread_pool.h — a tiny fixed-size worker pool for the CPU reference's data-parallel loops.
// parallel_for splits [0, n) into one contiguous chunk per thread; every index is handled by
// exactly one thread, so a loop whose iterations write disjoint outputs gives bit-identical
// results for any thread count. Not reentrant: one parallel_for at a time per pool.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gptoss::ref {

class ThreadPool {
 public:
  // num_threads <= 0: one per hardware thread. The calling thread counts as one of them.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint contiguous ranges covering [0, n); returns when all are
  // done. An exception thrown by fn is rethrown here (the first one, by thread order).
  void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn);

 private:
  void worker_loop(int worker_idx);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t job_n_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<std::exception_ptr> errors_;  // [num_threads]
};

}  // namespace gptoss::ref
