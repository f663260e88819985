// megakernel.h — host-side entry points of the persistent decode kernel (megakernel.cu).
// Plain header (no vendor includes) so the engine's .cpp code can call it.
#pragma once

#include <cstddef>

#include "megakernel/kernel_args.h"

namespace gptoss::mk {

// Most KV splits per KV head in the attention phase (the last split's CTA merges them in shared
// memory, one warp's state region per split).
inline constexpr int kMaxAttentionSplits = 16;
// Threads per CTA the kernel is compiled for.
int megakernel_threads();
// CTAs for one CTA per SM when the occupancy API says the kernel fits; 0 when it does not.
int megakernel_grid_size();
// Dynamic shared memory the kernel needs for these dimensions.
size_t megakernel_smem_bytes(const MegakernelArgs& args);
// Throws gptoss::Error if the model's dimensions are outside what the kernel is compiled for.
void check_megakernel_shapes(const MegakernelArgs& args);
// One cooperative launch = one decode step (asynchronous on `stream`; null = default stream).
// Throws gptoss::Error if the grid cannot be co-resident or the launch fails.
void launch_megakernel(const MegakernelArgs& args, int grid, void* stream);

}  // namespace gptoss::mk
