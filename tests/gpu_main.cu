// gpu_main.cu — Catch2 main for the GPU tests. Exits with kGpuSkipCode (77, registered as
// ctest's SKIP_RETURN_CODE) when there is no usable GPU: no device, or no/too-old driver.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstdio>

namespace {
constexpr int kGpuSkipCode = 77;
}

int main(int argc, char** argv) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    std::printf("SKIPPED: no usable GPU (%s); the gpu-labelled tests need an NVIDIA GPU\n",
                err != cudaSuccess ? cudaGetErrorString(err) : "no CUDA device");
    return kGpuSkipCode;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    std::printf("GPU: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount);
  }
  return Catch::Session().run(argc, argv);
}
