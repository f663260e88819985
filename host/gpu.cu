// gpu.cu — CUDA implementation of host/gpu.h. The only host file that includes the runtime.
#include "host/gpu.h"

#include <cuda_runtime.h>

namespace gptoss::gpu {
namespace {

[[noreturn]] void fail(cudaError_t err, const char* expr, const char* file, int line) {
  std::string hint;
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    hint = "no usable NVIDIA GPU/driver: use --backend cpu";
  } else if (err == cudaErrorMemoryAllocation) {
    hint = "free GPU memory (nvidia-smi) or lower --max-context";
  }
  throw GpuError(fmt::format("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(err),
                             cudaGetErrorString(err), expr, file, line),
                 hint);
}

}  // namespace
}  // namespace gptoss::gpu

#define GPTOSS_CUDA(expr)                                                            \
  do {                                                                               \
    const cudaError_t gptoss_err_ = (expr);                                          \
    if (gptoss_err_ != cudaSuccess) ::gptoss::gpu::fail(gptoss_err_, #expr, __FILE__, __LINE__); \
  } while (0)

namespace gptoss::gpu {

bool available(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = fmt::format("{} ({})", cudaGetErrorName(err), cudaGetErrorString(err));
    cudaGetLastError();
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device";
    return false;
  }
  return true;
}

DeviceInfo device_info() {
  DeviceInfo info;
  GPTOSS_CUDA(cudaSetDevice(0));
  cudaDeviceProp prop{};
  GPTOSS_CUDA(cudaGetDeviceProperties(&prop, 0));
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.num_sms = prop.multiProcessorCount;
  info.l2_bytes = static_cast<size_t>(prop.l2CacheSize);
  info.smem_per_block_optin = prop.sharedMemPerBlockOptin;
  GPTOSS_CUDA(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

void require_hopper(const DeviceInfo& info) {
  if (info.cc_major < 9) {
    throw GpuError(fmt::format("GPU {} has compute capability {}.{}; this build targets Hopper "
                               "(sm_90a)", info.name, info.cc_major, info.cc_minor),
                   "run on an H100/H200, or use --backend cpu");
  }
}

void* device_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw GpuError(fmt::format("out of GPU memory allocating {} ({:.2f} GiB; {:.2f} GiB free of "
                               "{:.2f} GiB)", what, bytes / 1073741824.0, free_b / 1073741824.0,
                               total_b / 1073741824.0),
                   "free GPU memory, or lower --max-context");
  }
  GPTOSS_CUDA(err);
  return p;
}

void device_free(void* p) noexcept {
  if (p) cudaFree(p);
}

void* pinned_alloc(size_t bytes) {
  void* p = nullptr;
  GPTOSS_CUDA(cudaMallocHost(&p, bytes));
  return p;
}

void pinned_free(void* p) noexcept {
  if (p) cudaFreeHost(p);
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  GPTOSS_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  GPTOSS_CUDA(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void copy_to_device_async(void* dst, const void* src, size_t bytes, void* stream) {
  GPTOSS_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                              static_cast<cudaStream_t>(stream)));
}

void memset_device(void* dst, int value, size_t bytes) {
  GPTOSS_CUDA(cudaMemset(dst, value, bytes));
}

void synchronize() { GPTOSS_CUDA(cudaDeviceSynchronize()); }

void* stream_create() {
  cudaStream_t s = nullptr;
  GPTOSS_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void stream_destroy(void* stream) noexcept {
  if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}

void stream_synchronize(void* stream) {
  GPTOSS_CUDA(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

EventTimer::EventTimer() {
  cudaEvent_t a = nullptr, b = nullptr;
  GPTOSS_CUDA(cudaEventCreate(&a));
  GPTOSS_CUDA(cudaEventCreate(&b));
  start_ = a;
  stop_ = b;
}

EventTimer::~EventTimer() {
  cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}

void EventTimer::start() { GPTOSS_CUDA(cudaEventRecord(static_cast<cudaEvent_t>(start_))); }
void EventTimer::stop() { GPTOSS_CUDA(cudaEventRecord(static_cast<cudaEvent_t>(stop_))); }

float EventTimer::elapsed_ms() {
  GPTOSS_CUDA(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0;
  GPTOSS_CUDA(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_),
                                   static_cast<cudaEvent_t>(stop_)));
  return ms;
}

}  // namespace gptoss::gpu
