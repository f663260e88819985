// gpu.cu — host/gpu.h for CUDA and HIP: the only host file that includes a vendor runtime. Each
// wrapped call names the CUDA function and, beside it, its HIP counterpart; the HIP side is
// compiled (ROCm 5.2.3) but has not run on AMD hardware.
#include "host/gpu.h"

#include <cstring>  // std::memset of mapped memory

#if defined(__HIPCC__)
#include <hip/hip_runtime.h>
#else
#include <cuda_runtime.h>
#endif

#include "device_ops/platform.cuh"  // kWavefrontSize, checked against the device

namespace gptoss::gpu {
namespace {

#if defined(__HIPCC__)
using RtError = hipError_t;
constexpr RtError kRtSuccess = hipSuccess;
constexpr const char* kVendor = "HIP";
constexpr const char* kNoDeviceHint = "no usable AMD GPU/driver: use the CPU backend";
const char* rt_error_name(RtError e) { return hipGetErrorName(e); }
const char* rt_error_string(RtError e) { return hipGetErrorString(e); }
RtError rt_get_last_error() { return hipGetLastError(); }
bool rt_no_device(RtError e) { return e == hipErrorNoDevice || e == hipErrorInsufficientDriver; }
bool rt_out_of_memory(RtError e) { return e == hipErrorOutOfMemory; }
bool rt_kernel_fault(RtError e) {
  return e == hipErrorIllegalAddress || e == hipErrorLaunchFailure || e == hipErrorAssert ||
         e == hipErrorLaunchTimeOut;
}
#else
using RtError = cudaError_t;
constexpr RtError kRtSuccess = cudaSuccess;
constexpr const char* kVendor = "CUDA";
constexpr const char* kNoDeviceHint = "no usable NVIDIA GPU/driver: use the CPU backend";
const char* rt_error_name(RtError e) { return cudaGetErrorName(e); }
const char* rt_error_string(RtError e) { return cudaGetErrorString(e); }
RtError rt_get_last_error() { return cudaGetLastError(); }
bool rt_no_device(RtError e) { return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver; }
bool rt_out_of_memory(RtError e) { return e == cudaErrorMemoryAllocation; }
bool rt_kernel_fault(RtError e) {
  return e == cudaErrorIllegalAddress || e == cudaErrorLaunchFailure ||
         e == cudaErrorIllegalInstruction || e == cudaErrorMisalignedAddress ||
         e == cudaErrorAssert || e == cudaErrorHardwareStackError || e == cudaErrorInvalidPc ||
         e == cudaErrorLaunchTimeout;
}
#endif

[[noreturn]] void fail(RtError err, const char* expr, const char* file, int line) {
  std::string hint;
  Remedy remedy = Remedy::kNone;
  if (rt_no_device(err)) {
    hint = kNoDeviceHint;
    remedy = Remedy::kCpuBackend;
  } else if (rt_out_of_memory(err)) {
    hint = kOutOfMemoryHint;
    remedy = Remedy::kLowerContext;
  } else if (rt_kernel_fault(err)) {
    hint = kKernelFaultHint;
  }
  throw GpuError(fmt::format("{} error {} ({}) in {} at {}:{}", kVendor, rt_error_name(err),
                             rt_error_string(err), expr, file, line),
                 hint, remedy);
}

}  // namespace
}  // namespace gptoss::gpu

#define GPTOSS_GPU_CALL(expr)                                                                    \
  do {                                                                                           \
    const ::gptoss::gpu::RtError gptoss_err_ = (expr);                                           \
    if (gptoss_err_ != ::gptoss::gpu::kRtSuccess) ::gptoss::gpu::fail(gptoss_err_, #expr, __FILE__, __LINE__); \
  } while (0)

namespace gptoss::gpu {

const char* backend_name() { return kVendor; }

bool available(std::string* why) {
  int count = 0;
#if defined(__HIPCC__)
  const RtError err = hipGetDeviceCount(&count);
#else
  const RtError err = cudaGetDeviceCount(&count);
#endif
  if (err != kRtSuccess) {
    if (why) *why = fmt::format("{} ({})", rt_error_name(err), rt_error_string(err));
    (void)rt_get_last_error();
    return false;
  }
  if (count == 0) {
    if (why) *why = fmt::format("no {} device", kVendor);
    return false;
  }
  return true;
}

DeviceInfo device_info() {
  DeviceInfo info;
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipSetDevice(0));
  hipDeviceProp_t prop{};
  GPTOSS_GPU_CALL(hipGetDeviceProperties(&prop, 0));
  info.smem_per_block_optin = prop.sharedMemPerBlock;  // ROCm 5.2 has no opt-in limit
  info.arch = prop.gcnArchName;
  GPTOSS_GPU_CALL(hipMemGetInfo(&info.free_bytes, &info.total_bytes));
#else
  GPTOSS_GPU_CALL(cudaSetDevice(0));
  cudaDeviceProp prop{};
  GPTOSS_GPU_CALL(cudaGetDeviceProperties(&prop, 0));
  info.smem_per_block_optin = prop.sharedMemPerBlockOptin;
  info.arch = fmt::format("sm_{}{}", prop.major, prop.minor);
  GPTOSS_GPU_CALL(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
#endif
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.num_sms = prop.multiProcessorCount;
  info.l2_bytes = static_cast<size_t>(prop.l2CacheSize);
  info.warp_size = prop.warpSize;
  int clock_khz = 0, memory_clock_khz = 0;  // CUDA 13 dropped these from cudaDeviceProp
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipDeviceGetAttribute(&clock_khz, hipDeviceAttributeClockRate, 0));
  GPTOSS_GPU_CALL(hipDeviceGetAttribute(&memory_clock_khz, hipDeviceAttributeMemoryClockRate, 0));
#else
  GPTOSS_GPU_CALL(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  GPTOSS_GPU_CALL(cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, 0));
#endif
  info.clock_mhz = clock_khz / 1000;
  info.memory_clock_mhz = memory_clock_khz / 1000;
  return info;
}

void require_hopper(const DeviceInfo& info) {
#if defined(__HIPCC__)
  // The device code was compiled for one wavefront size (GPTOSS_WAVEFRONT_SIZE from the arch list).
  if (info.warp_size != dev::kWavefrontSize) {
    throw GpuError(fmt::format("GPU {} ({}) has {}-lane wavefronts; this build's device code was "
                               "compiled for {}", info.name, info.arch, info.warp_size,
                               dev::kWavefrontSize),
                   "rebuild with CMAKE_HIP_ARCHITECTURES set to this GPU's gfx target");
  }
#else
  if (info.cc_major < 9) {
    throw GpuError(fmt::format("GPU {} has compute capability {}.{}; this build targets Hopper "
                               "(sm_90a)", info.name, info.cc_major, info.cc_minor),
                   "run on an H100/H200, or use the CPU backend", Remedy::kCpuBackend);
  }
#endif
}

void* device_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
#if defined(__HIPCC__)
  const RtError err = hipMalloc(&p, bytes == 0 ? 1 : bytes);
#else
  const RtError err = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
#endif
  if (rt_out_of_memory(err)) {
    (void)rt_get_last_error();
    size_t free_b = 0, total_b = 0;
#if defined(__HIPCC__)
    (void)hipMemGetInfo(&free_b, &total_b);
#else
    cudaMemGetInfo(&free_b, &total_b);
#endif
    throw GpuError(fmt::format("out of GPU memory allocating {} ({:.2f} GiB; {:.2f} GiB free of "
                               "{:.2f} GiB)", what, bytes / 1073741824.0, free_b / 1073741824.0,
                               total_b / 1073741824.0),
                   kOutOfMemoryHint, Remedy::kLowerContext);
  }
  GPTOSS_GPU_CALL(err);
  return p;
}

void device_free(void* p) noexcept {
#if defined(__HIPCC__)
  if (p) (void)hipFree(p);
#else
  if (p) cudaFree(p);
#endif
}

void* pinned_alloc(size_t bytes) {
  void* p = nullptr;
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipHostMalloc(&p, bytes, hipHostMallocDefault));
#else
  GPTOSS_GPU_CALL(cudaMallocHost(&p, bytes));
#endif
  return p;
}

void* mapped_alloc(size_t bytes, void** device_ptr) {
  void* p = nullptr;
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipHostMalloc(&p, bytes, hipHostMallocMapped));
  GPTOSS_GPU_CALL(hipHostGetDevicePointer(device_ptr, p, 0));
#else
  GPTOSS_GPU_CALL(cudaHostAlloc(&p, bytes, cudaHostAllocMapped));
  GPTOSS_GPU_CALL(cudaHostGetDevicePointer(device_ptr, p, 0));
#endif
  std::memset(p, 0, bytes);
  return p;
}

void pinned_free(void* p) noexcept {
#if defined(__HIPCC__)
  if (p) (void)hipHostFree(p);
#else
  if (p) cudaFreeHost(p);
#endif
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipMemcpy(dst, src, bytes, hipMemcpyHostToDevice));
#else
  GPTOSS_GPU_CALL(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
#endif
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipMemcpy(dst, src, bytes, hipMemcpyDeviceToHost));
#else
  GPTOSS_GPU_CALL(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
#endif
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipMemcpy(dst, src, bytes, hipMemcpyDeviceToDevice));
#else
  GPTOSS_GPU_CALL(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
#endif
}

void copy_to_device_async(void* dst, const void* src, size_t bytes, void* stream) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipMemcpyAsync(dst, src, bytes, hipMemcpyHostToDevice,
                                 static_cast<hipStream_t>(stream)));
#else
  GPTOSS_GPU_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                  static_cast<cudaStream_t>(stream)));
#endif
}

void memset_device(void* dst, int value, size_t bytes) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipMemset(dst, value, bytes));
#else
  GPTOSS_GPU_CALL(cudaMemset(dst, value, bytes));
#endif
}

void synchronize() {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipDeviceSynchronize());
#else
  GPTOSS_GPU_CALL(cudaDeviceSynchronize());
#endif
}

void check_launch(const char* what) {
  const RtError err = rt_get_last_error();
  if (err != kRtSuccess) {
    throw GpuError(fmt::format("{} launch failed: {}", what, rt_error_string(err)));
  }
}

void* stream_create() {
#if defined(__HIPCC__)
  hipStream_t s = nullptr;
  GPTOSS_GPU_CALL(hipStreamCreateWithFlags(&s, hipStreamNonBlocking));
#else
  cudaStream_t s = nullptr;
  GPTOSS_GPU_CALL(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
#endif
  return s;
}

void stream_destroy(void* stream) noexcept {
#if defined(__HIPCC__)
  if (stream) (void)hipStreamDestroy(static_cast<hipStream_t>(stream));
#else
  if (stream) cudaStreamDestroy(static_cast<cudaStream_t>(stream));
#endif
}

void stream_synchronize(void* stream) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipStreamSynchronize(static_cast<hipStream_t>(stream)));
#else
  GPTOSS_GPU_CALL(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
#endif
}

int multiprocessor_count() {
  int device = 0, sms = 0;
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipGetDevice(&device));
  GPTOSS_GPU_CALL(hipDeviceGetAttribute(&sms, hipDeviceAttributeMultiprocessorCount, device));
#else
  GPTOSS_GPU_CALL(cudaGetDevice(&device));
  GPTOSS_GPU_CALL(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
#endif
  return sms;
}

int max_active_blocks_per_sm(const void* kernel, int block_threads, size_t dynamic_smem_bytes) {
  int per_sm = 0;
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block_threads,
                                                               dynamic_smem_bytes));
#else
  GPTOSS_GPU_CALL(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block_threads,
                                                                dynamic_smem_bytes));
#endif
  return per_sm;
}

void set_max_dynamic_smem(const void* kernel, size_t bytes) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipFuncSetAttribute(kernel, hipFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
#else
  GPTOSS_GPU_CALL(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
#endif
}

void launch_cooperative(const void* kernel, int grid, int block_threads, void** args,
                        size_t dynamic_smem_bytes, void* stream) {
#if defined(__HIPCC__)
  GPTOSS_GPU_CALL(hipLaunchCooperativeKernel(kernel, dim3(grid), dim3(block_threads), args,
                                             unsigned(dynamic_smem_bytes),
                                             static_cast<hipStream_t>(stream)));
#else
  GPTOSS_GPU_CALL(cudaLaunchCooperativeKernel(kernel, dim3(grid), dim3(block_threads), args,
                                              dynamic_smem_bytes, static_cast<cudaStream_t>(stream)));
#endif
}

#if defined(__HIPCC__)
EventTimer::EventTimer() {
  hipEvent_t a = nullptr, b = nullptr;
  GPTOSS_GPU_CALL(hipEventCreate(&a));
  GPTOSS_GPU_CALL(hipEventCreate(&b));
  start_ = a;
  stop_ = b;
}

EventTimer::~EventTimer() {
  (void)hipEventDestroy(static_cast<hipEvent_t>(start_));
  (void)hipEventDestroy(static_cast<hipEvent_t>(stop_));
}

void EventTimer::start() { GPTOSS_GPU_CALL(hipEventRecord(static_cast<hipEvent_t>(start_))); }
void EventTimer::stop() { GPTOSS_GPU_CALL(hipEventRecord(static_cast<hipEvent_t>(stop_))); }

float EventTimer::elapsed_ms() {
  GPTOSS_GPU_CALL(hipEventSynchronize(static_cast<hipEvent_t>(stop_)));
  float ms = 0;
  GPTOSS_GPU_CALL(hipEventElapsedTime(&ms, static_cast<hipEvent_t>(start_),
                                      static_cast<hipEvent_t>(stop_)));
  return ms;
}
#else
EventTimer::EventTimer() {
  cudaEvent_t a = nullptr, b = nullptr;
  GPTOSS_GPU_CALL(cudaEventCreate(&a));
  GPTOSS_GPU_CALL(cudaEventCreate(&b));
  start_ = a;
  stop_ = b;
}

EventTimer::~EventTimer() {
  cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}

void EventTimer::start() { GPTOSS_GPU_CALL(cudaEventRecord(static_cast<cudaEvent_t>(start_))); }
void EventTimer::stop() { GPTOSS_GPU_CALL(cudaEventRecord(static_cast<cudaEvent_t>(stop_))); }

float EventTimer::elapsed_ms() {
  GPTOSS_GPU_CALL(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0;
  GPTOSS_GPU_CALL(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_),
                                       static_cast<cudaEvent_t>(stop_)));
  return ms;
}
#endif  // __HIPCC__

}  // namespace gptoss::gpu
