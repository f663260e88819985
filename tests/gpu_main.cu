// gpu_main.cu — Catch2 main for the GPU tests. Exits with kGpuSkipCode (77, registered as
// ctest's SKIP_RETURN_CODE) when there is no usable GPU: no device, or no/too-old driver.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <string>

#include "host/gpu.h"

namespace {
constexpr int kGpuSkipCode = 77;
}

int main(int argc, char** argv) {
  std::string why;
  if (!gptoss::gpu::available(&why)) {
    std::printf("SKIPPED: no usable GPU (%s); the gpu-labelled tests need a %s GPU\n", why.c_str(),
                gptoss::gpu::backend_name());
    return kGpuSkipCode;
  }
  try {
    const gptoss::gpu::DeviceInfo d = gptoss::gpu::device_info();
    std::printf("GPU: %s (%s, %d SMs)\n", d.name.c_str(), d.arch.c_str(), d.num_sms);
  } catch (const std::exception&) {
  }
  return Catch::Session().run(argc, argv);
}
