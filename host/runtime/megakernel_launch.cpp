// megakernel_launch.cpp — grid size, model checks and the cooperative launch of the megakernel.
#include "host/runtime/megakernel_launch.h"

#ifndef GPTOSS_GPU_OFF

#include <string>

#include <fmt/core.h>

#include "host/error.h"
#include "host/gpu.h"
#include "megakernel/megakernel.h"

namespace gptoss {

int megakernel_grid_size() {
  const int per_sm = gpu::max_active_blocks_per_sm(mk::megakernel_entry(), mk::megakernel_threads(), 0);
  if (per_sm < 1) throw Error("the megakernel cannot be resident on this GPU (occupancy 0)");
  return gpu::multiprocessor_count();
}

void check_megakernel(const mk::MegakernelArgs& a, int grid) {
  const std::string why = mk::megakernel_shape_problem(a, grid);
  if (!why.empty()) throw Error(fmt::format("the megakernel does not support this model: {}", why));
}

void launch_megakernel(const mk::MegakernelArgs& a, int grid, void* stream) {
  const void* kernel = mk::megakernel_entry();
  const int threads = mk::megakernel_threads();
  const size_t smem = mk::megakernel_smem_bytes(a);
  gpu::set_max_dynamic_smem(kernel, smem);
  const int per_sm = gpu::max_active_blocks_per_sm(kernel, threads, smem);
  const int sms = gpu::multiprocessor_count();
  if (per_sm < 1 || grid > sms * per_sm) {
    throw Error(fmt::format("megakernel: {} CTAs cannot all be resident ({} SMs x {} per SM with "
                            "{} B of shared memory)", grid, sms, per_sm, smem),
                "the persistent kernel needs one CTA per SM; is another process using the GPU?");
  }
  mk::MegakernelArgs args = a;
  void* params[] = {&args};
  gpu::launch_cooperative(kernel, grid, threads, params, smem, stream);
}

}  // namespace gptoss

#endif  // GPTOSS_GPU_OFF
