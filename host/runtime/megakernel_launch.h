// megakernel_launch.h — the host's side of the persistent kernel: how many CTAs it runs with, the
// check of a model against it, and the cooperative launch of one decode step. The kernel itself
// (megakernel/) includes no host header; this file turns its plain answers into gptoss::Error.
// GPU builds only.
#pragma once

#include "megakernel/kernel_args.h"

namespace gptoss {

// CTAs for one CTA per SM; throws when the kernel cannot be resident.
int megakernel_grid_size();
// Throws gptoss::Error naming the problem if the kernel cannot run args (dimensions, max_splits)
// on `grid` CTAs.
void check_megakernel(const mk::MegakernelArgs& args, int grid);
// One cooperative launch = one decode step (asynchronous on `stream`; null = default stream).
// Throws if the grid cannot be co-resident or the launch fails.
void launch_megakernel(const mk::MegakernelArgs& args, int grid, void* stream);

}  // namespace gptoss
