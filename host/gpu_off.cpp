// gpu_off.cpp — host/gpu.h for a CPU-only build (GPTOSS_GPU_OFF): every call reports that the
// binary was built without GPU support; available() says so without throwing.
#ifdef GPTOSS_GPU_OFF
#include "host/gpu.h"

namespace gptoss::gpu {
namespace {
[[noreturn]] void no_gpu() {
  throw GpuError("this gptoss was built without GPU support (-DGPTOSS_GPU=OFF)",
                 "rebuild with -DGPTOSS_GPU=CUDA, or use the CPU backend", Remedy::kCpuBackend);
}
}  // namespace

bool available(std::string* why) {
  if (why) *why = "built without GPU support (-DGPTOSS_GPU=OFF)";
  return false;
}
const char* backend_name() { return "OFF"; }
DeviceInfo device_info() { no_gpu(); }
void require_hopper(const DeviceInfo&) { no_gpu(); }
void* device_alloc(size_t, const char*) { no_gpu(); }
void device_free(void*) noexcept {}
void* pinned_alloc(size_t) { no_gpu(); }
void* mapped_alloc(size_t, void**) { no_gpu(); }
void pinned_free(void*) noexcept {}
void copy_to_device(void*, const void*, size_t) { no_gpu(); }
void copy_to_host(void*, const void*, size_t) { no_gpu(); }
void copy_to_device_async(void*, const void*, size_t, void*) { no_gpu(); }
void copy_on_device(void*, const void*, size_t) { no_gpu(); }
void memset_device(void*, int, size_t) { no_gpu(); }
void synchronize() { no_gpu(); }
void check_launch(const char*) { no_gpu(); }
int multiprocessor_count() { no_gpu(); }
int max_active_blocks_per_sm(const void*, int, size_t) { no_gpu(); }
void set_max_dynamic_smem(const void*, size_t) { no_gpu(); }
void launch_cooperative(const void*, int, int, void**, size_t, void*) { no_gpu(); }
void* stream_create() { no_gpu(); }
void stream_destroy(void*) noexcept {}
void stream_synchronize(void*) { no_gpu(); }
EventTimer::EventTimer() { no_gpu(); }
EventTimer::~EventTimer() = default;
void EventTimer::start() { no_gpu(); }
void EventTimer::stop() { no_gpu(); }
float EventTimer::elapsed_ms() { no_gpu(); }
}  // namespace gptoss::gpu
#endif  // GPTOSS_GPU_OFF
