// megakernel_launch.h — the host's side of the persistent kernel: how many CTAs it runs with, the
// plan of its weight ring for this GPU's shared memory, its per-CTA work list, and the cooperative
// launch of one decode step. The kernel itself (megakernel/) includes no host header; this file
// turns its plain answers into gptoss::Error with hints. GPU builds only.
#pragma once

#include "megakernel/kernel_args.h"
#include "megakernel/schedule.h"

namespace gptoss {

// CTAs for one CTA per SM; throws when the kernel cannot be resident.
int megakernel_grid_size();
// Checks the model's dimensions against the kernel, plans args->ring for this GPU's shared memory
// (a->max_splits must be set) and returns the work list of `grid` CTAs. Throws gptoss::Error
// naming what does not fit.
mk::Schedule plan_megakernel(mk::MegakernelArgs* args, int grid);
// One cooperative launch = one decode step (asynchronous on `stream`; null = default stream).
// Throws if the grid cannot be co-resident or the launch fails.
void launch_megakernel(const mk::MegakernelArgs& args, int grid, void* stream);

}  // namespace gptoss
