// schedule.cpp — the host-built work list of the megakernel (schedule.h): ring planning and the
// per-CTA segments.
#include "megakernel/schedule.h"

#include <algorithm>
#include <cstdint>
#include <string>

namespace gptoss::mk {
namespace {

constexpr int kSlotAlign = 128;
constexpr int kMaxStages = 8;
constexpr int kMinStages = 2;
// The consumers' BF16 slot GEMV keeps one accumulator per row of a slot in registers
// (kernel_common.cuh: kMaxSlotRows).
constexpr int kMaxRowsPerSlot = 4;

int round_up(int v, int m) { return (v + m - 1) / m * m; }

}  // namespace

std::string plan_ring(const MegakernelArgs& a, size_t smem_budget_bytes, RingShape* ring) {
  const int hidden_row = a.hidden * 2, q_row = a.num_heads * a.head_dim * 2;
  const int up_tile = kExpertTileRows * int(mxfp4_row_bytes(a.hidden));
  const int down_tile = kExpertTileRows * int(mxfp4_row_bytes(a.intermediate));
  const int slot = round_up(std::max({up_tile, down_tile, 2 * hidden_row, q_row}), kSlotAlign);
  RingShape r;
  r.slot_bytes = slot;
  r.qkv_pairs_per_slot = std::clamp(slot / (2 * hidden_row), 1, kMaxRowsPerSlot / 2);
  r.out_rows_per_slot = std::clamp(slot / q_row, 1, kMaxRowsPerSlot);
  r.lm_rows_per_slot = std::clamp(slot / hidden_row, 1, kMaxRowsPerSlot);
  r.stages = int(std::min<size_t>(kMaxStages, smem_budget_bytes / size_t(slot)));
  *ring = r;
  if (r.stages < kMinStages) {
    return "the weight ring needs " + std::to_string(kMinStages) + " slots of " +
           std::to_string(slot) + " B but only " + std::to_string(smem_budget_bytes) +
           " B of shared memory are left";
  }
  return {};
}

Schedule build_schedule(const MegakernelArgs& a, const RingShape& ring, int grid) {
  Schedule s;
  const uint32_t pairs = uint32_t(a.num_heads + 2 * a.num_kv_heads) * uint32_t(a.head_dim / 2);
  const uint32_t up_tiles =
      uint32_t(a.experts_per_token) * ((2u * a.intermediate + kExpertTileRows - 1) / kExpertTileRows);
  const uint32_t down_tiles = (uint32_t(a.hidden) + kExpertTileRows - 1) / kExpertTileRows;
  // Contiguous share [n b / grid, n (b + 1) / grid) of n units for CTA b.
  auto share = [&](int phase, uint32_t n, int b, int per_item) {
    return WorkSegment{uint8_t(phase), uint8_t(per_item), 0, 1, uint32_t(uint64_t(n) * b / grid),
                       uint32_t(uint64_t(n) * (b + 1) / grid), 0};
  };
  auto strided = [&](int phase, uint32_t n, int b, int ranks) {
    return WorkSegment{uint8_t(phase), 1, 1, uint8_t(ranks), uint32_t(b), n, uint32_t(grid)};
  };
  s.segments.reserve(size_t(grid) * kNumStreamSegments);
  for (int b = 0; b < grid; ++b) {
    s.segments.push_back(share(int(Phase::kNormQkvRope), pairs, b, ring.qkv_pairs_per_slot));
    s.segments.push_back(share(int(Phase::kOutProj), uint32_t(a.hidden), b, ring.out_rows_per_slot));
    s.segments.push_back(strided(int(Phase::kExpertsUp), up_tiles, b, 1));
    s.segments.push_back(strided(int(Phase::kExpertsDown), down_tiles, b, a.experts_per_token));
    s.segments.push_back(share(kLmHeadPhase, uint32_t(a.vocab_size), b, ring.lm_rows_per_slot));
  }
  return s;
}

int max_epilogue_floats(const MegakernelArgs& a, const Schedule& schedule, int grid) {
  int most = 0;
  for (int b = 0; b < grid; ++b) {
    const WorkSegment* seg = &schedule.segments[size_t(b) * kNumStreamSegments];
    // qkv: two biases and a RoPE cos/sin per pair; out_proj: bias and residual per row;
    // experts_up: one bias per row; experts_down: the top-k biases and the residual per row.
    most = std::max<int>(most, 4 * int(segment_units(seg[0])));
    most = std::max<int>(most, 2 * int(segment_units(seg[1])));
    most = std::max<int>(most, kExpertTileRows * int(segment_units(seg[2])));
    most = std::max<int>(most, kExpertTileRows * (a.experts_per_token + 1) * int(segment_units(seg[3])));
  }
  return most;
}

}  // namespace gptoss::mk
