#include "host/reference/thread_pool.h"

#include <exception>

namespace gptoss::ref {
namespace {

// Thread t of T gets [n*t/T, n*(t+1)/T): contiguous, covering, independent of timing.
void chunk(size_t n, int t, int num_threads, size_t* begin, size_t* end) {
  *begin = n * static_cast<size_t>(t) / static_cast<size_t>(num_threads);
  *end = n * static_cast<size_t>(t + 1) / static_cast<size_t>(num_threads);
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (num_threads <= 0) num_threads = 1;
  errors_.resize(static_cast<size_t>(num_threads));
  workers_.reserve(static_cast<size_t>(num_threads - 1));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker_loop(int worker_idx) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(size_t, size_t)>* job;
    size_t n;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
    }
    size_t begin, end;
    chunk(n, worker_idx, num_threads(), &begin, &end);
    try {
      if (begin < end) (*job)(begin, end);
    } catch (...) {
      errors_[static_cast<size_t>(worker_idx)] = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  if (workers_.empty()) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
    for (auto& e : errors_) e = nullptr;
  }
  start_cv_.notify_all();
  size_t begin, end;
  chunk(n, 0, num_threads(), &begin, &end);
  try {
    if (begin < end) fn(begin, end);
  } catch (...) {
    errors_[0] = std::current_exception();
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return pending_ == 0; });
  }
  for (auto& e : errors_) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace gptoss::ref
