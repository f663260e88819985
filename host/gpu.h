// gpu.h — the host's view of the GPU: a handful of wrapped runtime calls behind an interface
// with no vendor headers, so plain .cpp code (CLI, engine, benches) and the .cu files' host code
// can use it. Implemented in host/gpu.cu for CUDA and HIP (the vendor calls side by side); in a
// CPU-only build (GPTOSS_GPU_OFF) every call reports that the binary was built without GPU
// support. Errors throw gptoss::GpuError (a gptoss::Error) naming the call, the file:line and the
// runtime's error string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "host/error.h"

namespace gptoss::gpu {

class GpuError : public Error {
 public:
  using Error::Error;
};

// Hints of the two faults that can end a decode: a kernel fault (the context is lost; nothing
// after the last printed token was produced) and an out-of-memory error.
inline constexpr const char* kKernelFaultHint =
    "a GPU kernel faulted; the CUDA context is lost and the run cannot continue. Re-run the "
    "same command, and report it with the output of compute-sanitizer (docs/RELIABILITY.md)";
inline constexpr const char* kOutOfMemoryHint = "free GPU memory (nvidia-smi) or lower the context length";

struct DeviceInfo {
  std::string name;
  int ordinal = 0;
  int cc_major = 0, cc_minor = 0;
  int num_sms = 0;
  size_t total_bytes = 0, free_bytes = 0;
  size_t l2_bytes = 0;
  size_t smem_per_block_optin = 0;
  int warp_size = 0;                           // hardware: 32 on NVIDIA, 64 on CDNA
  int clock_mhz = 0, memory_clock_mhz = 0;     // as reported by the runtime
  std::string arch;                            // "sm_90" or the AMD gfx name
};

// The backend this binary was compiled for: "CUDA" or "HIP".
const char* backend_name();

// True when a usable device exists; otherwise false with the reason (no device, no driver,
// built without GPU support).
bool available(std::string* why);
// Properties of device 0 (throws GpuError when there is none).
DeviceInfo device_info();
// Throws a GpuError with a hint unless the device is one this build targets: Hopper (sm_90) or
// newer for CUDA; for HIP an AMD device whose wavefront size matches the compiled one.
void require_hopper(const DeviceInfo& info);

// Raw device memory. `what` names the allocation in an out-of-memory error.
void* device_alloc(size_t bytes, const char* what);
void device_free(void* p) noexcept;
void* pinned_alloc(size_t bytes);
void pinned_free(void* p) noexcept;
// Zeroed pinned host memory mapped into the device's address space: the device writes through
// *device_ptr, the host reads the returned pointer, also after a kernel trap has made device memory
// unreadable (hang reports). Free with pinned_free.
void* mapped_alloc(size_t bytes, void** device_ptr);
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_to_device_async(void* dst, const void* src, size_t bytes, void* stream);
void copy_on_device(void* dst, const void* src, size_t bytes);
void memset_device(void* dst, int value, size_t bytes);
void synchronize();
// Throws a GpuError naming `what` when the last kernel launch failed (does not synchronize).
void check_launch(const char* what);

// Launch helpers; `kernel` is the address of a __global__ function.
int multiprocessor_count();
int max_active_blocks_per_sm(const void* kernel, int block_threads, size_t dynamic_smem_bytes);
void set_max_dynamic_smem(const void* kernel, size_t bytes);
// Cooperative launch of grid x block_threads (1-D); args[i] points at kernel parameter i.
void launch_cooperative(const void* kernel, int grid, int block_threads, void** args,
                        size_t dynamic_smem_bytes, void* stream);
void* stream_create();
void stream_destroy(void* stream) noexcept;
void stream_synchronize(void* stream);

// Owning device allocation of `count` elements of T (RAII, movable).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t count, const char* what)
      : ptr_(static_cast<T*>(device_alloc(count * sizeof(T), what))), count_(count) {}
  ~DeviceBuffer() { device_free(ptr_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      device_free(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Device-side event timer: elapsed milliseconds between start() and stop() on the default
// stream.
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start();
  void stop();
  float elapsed_ms();  // synchronizes on the stop event

 private:
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

}  // namespace gptoss::gpu
