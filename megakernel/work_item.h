// work_item.h — the weight stream's work list, shared by the host that builds it (schedule.h) and
// the kernel that walks it (weight_ring.cuh): per CTA one WorkSegment per weight phase of a layer
// (the same for every layer) and one for the LM head. A segment expands, by the arithmetic below
// (one implementation for host and device), into WorkItems: one ring slot of weights each.
// Plain header: no GPU includes.
#pragma once

#include <cstdint>

#include "megakernel/kernel_args.h"
#include "megakernel/phases.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GPTOSS_HOST_DEVICE __host__ __device__
#else
#define GPTOSS_HOST_DEVICE
#endif

namespace gptoss::mk {

// The phases whose weights go through the ring, in stream order within a layer, then the LM head.
// (The router reads its 0.2-0.7 MB directly.) Segment s of a CTA serves kStreamPhases[s].
inline constexpr int kNumStreamSegments = 5;
inline constexpr int kStreamPhases[kNumStreamSegments] = {
    int(Phase::kNormQkvRope), int(Phase::kOutProj), int(Phase::kExpertsUp), int(Phase::kExpertsDown),
    kLmHeadPhase};
inline constexpr int kLmHeadSegment = kNumStreamSegments - 1;
constexpr int stream_segment_of(int phase) {
  return phase == int(Phase::kNormQkvRope) ? 0
         : phase == int(Phase::kOutProj)   ? 1
         : phase == int(Phase::kExpertsUp) ? 2
         : phase == int(Phase::kExpertsDown) ? 3
         : phase == kLmHeadPhase           ? 4
                                           : -1;
}
constexpr bool phase_is_expert(int phase) {
  return phase == int(Phase::kExpertsUp) || phase == int(Phase::kExpertsDown);
}

// Rows of an MXFP4 tile (the tensor-core GEMV's M) and bytes of one MXFP4 row (blocks + scales)
// for a contraction of k values.
inline constexpr int kExpertTileRows = 16;
GPTOSS_HOST_DEVICE constexpr uint32_t mxfp4_row_bytes(int k) { return uint32_t(k / 32) * 17u; }

// A CTA's share of one phase. Units are RoPE pairs (qkv), rows (out_proj, LM head) or 16-row tiles
// (experts: mlp1 tiles of the top-k experts rank-major for experts_up; tiles of the hidden dimension
// for experts_down, each expanded into one item per rank).
struct WorkSegment {
  uint8_t phase;     // Phase or kLmHeadPhase
  uint8_t per_item;  // contiguous segments: units per item (per ring slot)
  uint8_t strided;   // 1: units first, first + step, ... < end; 0: units [first, end)
  uint8_t ranks;     // items per unit: the top-k for experts_down, else 1
  uint32_t first, end, step;
};
static_assert(sizeof(WorkSegment) == 16, "one 16-byte load per segment");

// One ring slot's worth of weights. `layer` is num_layers for the LM head.
struct WorkItem {
  uint8_t phase;   // Phase, or kLmHeadPhase
  uint8_t rank;    // expert phases: which of the token's top-k experts (0 = highest logit)
  uint16_t layer;
  uint32_t first;  // first unit: RoPE pair (qkv), row (out_proj, LM head), tile's first row (experts)
  uint32_t count;  // pairs (qkv) or rows (the others)
  uint32_t bytes;  // bytes the item brings into its slot (the mbarrier's transaction count)
};

GPTOSS_HOST_DEVICE inline uint32_t segment_units(const WorkSegment& s) {
  if (s.end <= s.first) return 0;
  return s.strided ? (s.end - s.first - 1) / s.step + 1 : s.end - s.first;
}

GPTOSS_HOST_DEVICE inline uint32_t segment_items(const WorkSegment& s) {
  const uint32_t units = segment_units(s);
  return s.strided ? units * s.ranks : (units + s.per_item - 1) / s.per_item;
}

// Item idx (< segment_items(s)) of segment s in `layer`.
GPTOSS_HOST_DEVICE inline WorkItem segment_item(const MegakernelArgs& a, const WorkSegment& s,
                                                int layer, uint32_t idx) {
  WorkItem it{};
  it.phase = s.phase;
  it.layer = uint16_t(layer);
  if (!s.strided) {
    it.first = s.first + idx * s.per_item;
    it.count = s.end - it.first < s.per_item ? s.end - it.first : s.per_item;
    const uint32_t unit_bytes = s.phase == uint8_t(Phase::kNormQkvRope) ? uint32_t(a.hidden) * 4
                                : s.phase == uint8_t(Phase::kOutProj)
                                    ? uint32_t(a.num_heads * a.head_dim) * 2
                                    : uint32_t(a.hidden) * 2;
    it.bytes = it.count * unit_bytes;
    return it;
  }
  const uint32_t unit = s.first + (idx / s.ranks) * s.step;
  if (s.phase == uint8_t(Phase::kExpertsUp)) {
    const uint32_t rows = 2u * uint32_t(a.intermediate);
    const uint32_t tiles_per_expert = (rows + kExpertTileRows - 1) / kExpertTileRows;
    it.rank = uint8_t(unit / tiles_per_expert);
    it.first = (unit % tiles_per_expert) * kExpertTileRows;
    it.count = rows - it.first < uint32_t(kExpertTileRows) ? rows - it.first : kExpertTileRows;
    it.bytes = it.count * mxfp4_row_bytes(a.hidden);
  } else {  // experts_down: tile `unit` of the hidden dimension for rank idx % ranks
    it.rank = uint8_t(idx % s.ranks);
    it.first = unit * kExpertTileRows;
    const uint32_t rows = uint32_t(a.hidden);
    it.count = rows - it.first < uint32_t(kExpertTileRows) ? rows - it.first : kExpertTileRows;
    it.bytes = it.count * mxfp4_row_bytes(a.intermediate);
  }
  return it;
}

// Whether a step runs (layer, phase), by the phase loop's rules: the phase mask, the start layer,
// the stop point; the LM head runs only in a step that does not stop early.
GPTOSS_HOST_DEVICE inline bool phase_runs(const MegakernelArgs& a, int layer, int phase) {
  if (!((a.phase_mask >> phase) & 1u)) return false;
  if (phase == kLmHeadPhase) return a.stop_layer < 0;
  if (layer < a.start_layer) return false;
  return a.stop_layer < 0 || layer < a.stop_layer || (layer == a.stop_layer && phase <= a.stop_phase);
}

}  // namespace gptoss::mk
