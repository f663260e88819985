// megakernel.h — host-side entry points of the persistent decode kernel (megakernel.cu).
// Plain header (no vendor includes) so the engine's .cpp code can call it.
#pragma once

#include <cstddef>
#include <string>

#include "megakernel/kernel_args.h"
#include "megakernel/phases.h"

namespace gptoss::mk {

// Most KV splits per KV head in the attention phase (the last split's CTA merges them in shared
// memory, one warp's state region per split).
inline constexpr int kMaxAttentionSplits = 16;
// Profiling marks inside the phases (MegakernelArgs::phase_times): when the timeline is on, CTA 0
// thread 0 also records the global timer at these points of every layer. Layout of phase_times:
// [0] start, [1 + l * kNumPhases + p] after phase p's barrier, [1 + L * kNumPhases] the end of
// the LM head, then [2 + L * kNumPhases + l * kNumMarks + m] the marks.
enum class Mark : int {
  kQkvNorm, kQkvGemv,
  kAttnQ, kAttnScores, kAttnSoftmax, kAttnVWait, kAttnTiles, kAttnTilesAll, kAttnCtaMerge,
  kAttnMergeAll, kAttnSync, kAttnFence, kAttnPublish,
  kAttnSplitMerge,
  kUpSelect, kUpNorm, kUpStage, kUpGemv,
  kDownCopy, kDownStage, kDownGemv,
  kCount
};
inline constexpr int kNumMarks = static_cast<int>(Mark::kCount);
struct MarkInfo {
  Phase phase;
  const char* name;  // what ended at the mark
};
inline constexpr MarkInfo kMarkInfo[kNumMarks] = {
    {Phase::kNormQkvRope, "rmsnorm"},      {Phase::kNormQkvRope, "gemv + rope"},
    {Phase::kAttention, "q to smem"},      {Phase::kAttention, "1st tile scores"},
    {Phase::kAttention, "1st tile softmax"}, {Phase::kAttention, "1st tile V wait"},
    {Phase::kAttention, "key tiles"},      {Phase::kAttention, "tiles, any CTA"},
    {Phase::kAttention, "cta merge"},      {Phase::kAttention, "merge, last warp"},
    {Phase::kAttention, "cta barrier"},
    {Phase::kAttention, "fence + atomic"}, {Phase::kAttention, "publish split"},
    {Phase::kAttention, "split merge"},    {Phase::kExpertsUp, "select experts"},
    {Phase::kExpertsUp, "rmsnorm"},        {Phase::kExpertsUp, "stage input"},
    {Phase::kExpertsUp, "gemv + swiglu"},  {Phase::kExpertsDown, "copy inputs"},
    {Phase::kExpertsDown, "stage inputs"}, {Phase::kExpertsDown, "gemv + sum"}};
inline constexpr size_t phase_times_count(int num_layers) {
  return 2 + size_t(num_layers) * (kNumPhases + size_t(kNumMarks));
}
// The slots of phase_times (the one place that knows the layout): the kernel's start, the time the
// barrier after (layer, phase) released CTA 0, the end of the LM head, mark m of a layer.
inline constexpr size_t kStartSlot = 0;
inline constexpr size_t phase_end_slot(int layer, int phase) {
  return 1 + size_t(layer) * kNumPhases + size_t(phase);
}
inline constexpr size_t lm_head_end_slot(int num_layers) { return 1 + size_t(num_layers) * kNumPhases; }
inline constexpr size_t mark_slot(int num_layers, int layer, Mark m) {
  return 2 + size_t(num_layers) * kNumPhases + size_t(layer) * kNumMarks + size_t(m);
}

// Threads per CTA the kernel is compiled for.
int megakernel_threads();
// The __global__ function, for the host's occupancy queries and its cooperative launch
// (host/runtime/megakernel_launch.cpp); it takes one MegakernelArgs by value.
const void* megakernel_entry();
// Dynamic shared memory the kernel needs for these dimensions.
size_t megakernel_smem_bytes(const MegakernelArgs& args);
// Empty when the kernel supports the model's dimensions (and, for grid > 0, a grid of that many
// CTAs with args.max_splits), else what does not fit.
std::string megakernel_shape_problem(const MegakernelArgs& args, int grid);

}  // namespace gptoss::mk
