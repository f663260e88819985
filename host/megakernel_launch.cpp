// megakernel_launch.cpp — grid size, ring planning and the cooperative launch of the megakernel.
#include "host/megakernel_launch.h"

#ifndef GPTOSS_GPU_OFF

#include <algorithm>
#include <cstdlib>

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

mk::Schedule plan_megakernel(mk::MegakernelArgs* a, int grid) {
  std::string why = mk::megakernel_shape_problem(*a, 0);
  if (!why.empty()) throw Error(fmt::format("the megakernel does not support this model: {}", why));
  const gpu::DeviceInfo dev = gpu::device_info();
  const size_t fixed = mk::megakernel_smem_bytes_without_ring(*a);
  // Each stage also costs an 8-byte mbarrier and up to 15 bytes of alignment.
  const size_t budget = dev.smem_per_block_optin > fixed + 64 ? dev.smem_per_block_optin - fixed - 64 : 0;
  why = mk::plan_ring(*a, budget, &a->ring);
  if (!why.empty()) {
    throw Error(fmt::format("the megakernel does not fit this GPU's shared memory ({} B per block): {}",
                            dev.smem_per_block_optin, why));
  }
  if (const char* e = std::getenv("GPTOSS_MK_STAGES")) {  // debug: a shallower ring (timing)
    a->ring.stages = std::clamp(std::atoi(e), 2, a->ring.stages);
  }
  why = mk::megakernel_shape_problem(*a, grid);
  if (!why.empty()) throw Error(fmt::format("the megakernel cannot run this model on {} CTAs: {}", grid, why));
  mk::Schedule schedule = mk::build_schedule(*a, a->ring, grid);
  const int epilogue = mk::max_epilogue_floats(*a, schedule, grid);
  if (epilogue > mk::kEpilogueFloats) {
    throw Error(fmt::format("the megakernel cannot run this model on {} CTAs: a CTA's share of a "
                            "phase needs {} epilogue values (at most {})", grid, epilogue,
                            mk::kEpilogueFloats));
  }
  return schedule;
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
