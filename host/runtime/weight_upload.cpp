#include "host/runtime/weight_upload.h"

#ifndef GPTOSS_GPU_OFF

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "host/gpu.h"
#include "host/progress.h"

namespace gptoss {

namespace {

// Fills dst with n bytes of one item at `offset`, split into `threads` contiguous slices read (or
// copied) concurrently: one thread faulting a memory map or reading the page cache moves only a
// few GB/s.
void fill_parallel(void* dst, const UploadItem& it, size_t offset, size_t n, const FileReader* file,
                   int threads) {
  constexpr size_t kMinSlice = size_t(4) << 20;
  const int t = int(std::min<size_t>(size_t(threads), std::max<size_t>(1, n / kMinSlice)));
  const size_t slice = (n + size_t(t) - 1) / size_t(t);
  auto fill = [&](size_t begin, size_t len) {
    auto* out = static_cast<std::byte*>(dst) + begin;
    if (file) {
      file->read_at(out, len, it.file_offset + offset + begin);
    } else {
      std::memcpy(out, it.src + offset + begin, len);
    }
  };
  if (t <= 1) {
    fill(0, n);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> pool;
  pool.reserve(size_t(t));
  for (int k = 0; k < t; ++k) {
    const size_t begin = size_t(k) * slice;
    if (begin >= n) break;
    const size_t len = std::min(slice, n - begin);
    pool.emplace_back([&, begin, len] {
      try {
        fill(begin, len);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// The two staging buffers and their streams, released on every path.
struct Staging {
  void* buffer[2] = {nullptr, nullptr};
  void* stream[2] = {nullptr, nullptr};
  explicit Staging(size_t bytes) {
    try {
      for (int b = 0; b < 2; ++b) {
        buffer[b] = gpu::pinned_alloc(bytes);
        stream[b] = gpu::stream_create();
      }
    } catch (...) {
      release();
      throw;
    }
  }
  ~Staging() { release(); }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  void release() noexcept {
    for (int b = 0; b < 2; ++b) {
      if (stream[b]) {
        try {
          gpu::stream_synchronize(stream[b]);
        } catch (...) {
        }
        gpu::stream_destroy(stream[b]);
        stream[b] = nullptr;
      }
      if (buffer[b]) gpu::pinned_free(buffer[b]);
      buffer[b] = nullptr;
    }
  }
};

}  // namespace

UploadStats upload_weights(const std::vector<UploadItem>& items, const UploadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  uint64_t total = 0;
  for (const UploadItem& it : items) total += it.bytes;
  const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = options.threads > 0 ? options.threads : std::min(hw, 8);
  ProgressLine progress("loading weights", options.progress && total >= (1ull << 30));
  // Filling one buffer overlaps the copy of the other; a buffer is refilled only after its own
  // stream has drained.
  Staging staging(options.chunk_bytes);
  uint64_t done = 0;
  int which = 0;
  for (const UploadItem& it : items) {
    for (size_t o = 0; o < it.bytes; o += options.chunk_bytes) {
      const size_t len = std::min(options.chunk_bytes, it.bytes - o);
      gpu::stream_synchronize(staging.stream[which]);
      fill_parallel(staging.buffer[which], it, o, len, options.file, threads);
      gpu::copy_to_device_async(static_cast<std::byte*>(it.dst) + o, staging.buffer[which], len,
                                staging.stream[which]);
      which ^= 1;
      done += len;
      progress.update(done, total, elapsed());
    }
  }
  for (void* s : staging.stream) gpu::stream_synchronize(s);
  UploadStats stats;
  stats.bytes = total;
  stats.seconds = elapsed();
  stats.threads = threads;
  stats.from_file = options.file != nullptr;
  progress.finish(total, stats.seconds);
  return stats;
}

}  // namespace gptoss

#else  // GPTOSS_GPU_OFF

#include "host/gpu.h"

namespace gptoss {

UploadStats upload_weights(const std::vector<UploadItem>&, const UploadOptions&) {
  throw gpu::GpuError("this build has no GPU support", "rebuild with a GPU toolkit installed");
}

}  // namespace gptoss

#endif  // GPTOSS_GPU_OFF
