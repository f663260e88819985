// synth.h — synthetic gpt-oss checkpoints: the streaming writer of a whole checkpoint (the bytes
// of each tensor come from host/synth_weights.h's synth_fill) in the HF layout or the original/ layout. Host only; bounded memory (the
// 120b shape is 65 GB); output bit-identical for the same shape and seed on any machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "converter/checkpoint.h"
#include "host/model_config.h"
#include "host/synth_weights.h"  // synth_fill, the canonical-tensor generator
#include "host/tensor_spec.h"

namespace gptoss::conv {

// `shape` preset with optional overrides (0 = keep the preset's value).
ModelConfig synth_config(const std::string& shape, int layers = 0, int experts = 0, int vocab = 0);

struct SynthWriteOptions {
  CheckpointLayout layout = CheckpointLayout::kHF;
  uint64_t shard_bytes = 4'800'000'000ull;  // max data bytes per shard (hf-convert's 4.8 GB)
  int threads = 0;                          // fill threads; 0 = hardware concurrency
  // Replace a checkpoint already in the directory (its config.json or weight files); without it
  // such a directory is refused, as `gptoss convert` refuses an existing archive.
  bool force = false;
  // Called after each written chunk with (bytes done, bytes total) over the whole checkpoint.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// One file of the planned checkpoint: its stored tensors in write order, each with the canonical
// tensor it belongs to.
struct SynthShard {
  std::string file;  // "model-00001-of-00002.safetensors" or "model.safetensors"
  std::vector<SourcePiece> tensors;
  std::vector<std::string> canonical;  // [tensors.size()] canonical name of each
  uint64_t tensor_bytes = 0;
};
// The files write_synth_checkpoint() writes: stored tensors in canonical order, greedily packed
// into shards of at most shard_bytes (a tensor is never split, so boundaries cut through layers).
std::vector<SynthShard> synth_shard_plan(const ModelConfig& config, CheckpointLayout layout,
                                         uint64_t shard_bytes);

struct SynthWriteResult {
  uint64_t tensor_bytes = 0;  // sum of tensor data (the index's total_size)
  uint64_t file_bytes = 0;    // all safetensors files including headers
  int num_shards = 0;
};

// Writes a complete checkpoint into `dir` (created if needed): HF layout = config.json,
// generation_config.json, model-0000K-of-0000N.safetensors (zero-based, N = count - 1) and
// model.safetensors.index.json; original layout = dir/original/{config.json, dtypes.json,
// model.safetensors, or shards + index when above shard_bytes}.
SynthWriteResult write_synth_checkpoint(const std::filesystem::path& dir, const ModelConfig& config,
                                        uint64_t seed, const SynthWriteOptions& options);

}  // namespace gptoss::conv
