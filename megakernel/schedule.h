// schedule.h — the static per-CTA work list of one decode step: which weight tiles each CTA streams
// through its shared-memory ring (megakernel/weight_ring.cuh), in consumption order, for a whole
// token. Built once on the host from the phase list (megakernel/phases.h) and the model's
// dimensions, as one WorkSegment per stream phase (megakernel/work_item.h; the same for every
// layer, so the kernel keeps the whole list in registers and shared memory and never loads it
// again). Expert items name a rank of the token's top-k, resolved on the device after the router.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "megakernel/kernel_args.h"
#include "megakernel/work_item.h"

namespace gptoss::mk {

// The slot size for these dimensions (the largest single unit: a 16-row MXFP4 tile, a RoPE pair of
// QKV rows, an out_proj row, an LM-head row) and the ring's stages for a shared-memory budget.
// Returns an error message (empty when the ring fits).
std::string plan_ring(const MegakernelArgs& a, size_t smem_budget_bytes, RingShape* ring);

struct Schedule {
  std::vector<WorkSegment> segments;  // [grid][kNumStreamSegments]
};

// The work list of `grid` CTAs. Per layer: contiguous shares of the QKV pairs and out_proj rows;
// experts_up tiles b, b + grid, ... of the top-k experts' mlp1; experts_down tiles b, b + grid, ...
// of the hidden dimension, each for every rank (the weighted sum over experts stays in one CTA, in
// rank order); then a contiguous share of the LM-head rows. Each SM streams about the same bytes.
Schedule build_schedule(const MegakernelArgs& a, const RingShape& ring, int grid);

// The largest epilogue inputs (biases, residual, RoPE values) one CTA prefetches for one phase, in
// floats; the kernel's buffer holds kEpilogueFloats.
inline constexpr int kEpilogueFloats = 960;  // 2 per consumer thread
int max_epilogue_floats(const MegakernelArgs& a, const Schedule& schedule, int grid);

}  // namespace gptoss::mk
