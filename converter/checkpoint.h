// checkpoint.h — a gpt-oss checkpoint directory, in either of its two layouts:
//  - HF (top level): config.json, model.safetensors.index.json + sharded model-*.safetensors
//    (tensors resolved through weight_map; shards cut through layers), or one model.safetensors;
//  - original/ (OpenAI naming, FACTS.md 2.4): config.json with the 16 original keys, one or more
//    *.safetensors, fused attn.qkv, *.scale norms, mlp1_weight.blocks/.scales.
// open() validates that every tensor the config implies is present with the right dtype and
// shape, naming the first problem. Canonical tensors (host/tensor_spec.h) are then served as
// a list of byte pieces whose concatenation is the canonical tensor (for example the HF q, k, v
// weights as three pieces of the fused qkv), so the converter streams without copying.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "converter/safetensors.h"
#include "host/model_config.h"
#include "host/tensor_spec.h"

namespace gptoss::conv {

enum class CheckpointLayout { kHF, kOriginal };

// One stored tensor that holds part (or all) of a canonical tensor.
struct SourcePiece {
  std::string name;            // as stored, e.g. "model.layers.3.self_attn.k_proj.weight"
  DType dtype;
  std::vector<int64_t> shape;  // as stored
  uint64_t canonical_offset;   // byte offset of this piece inside the canonical tensor
  uint64_t num_bytes() const;
};

// The stored tensors whose concatenation (in order) is canonical tensor `canonical_name` of
// `config` in `layout` (FACTS.md 2.2 / 2.4): HF qkv = q_proj | k_proj | v_proj rows, all other
// tensors one piece. Throws gptoss::Error for a name that is not canonical for `config`.
std::vector<SourcePiece> source_pieces(const ModelConfig& config, CheckpointLayout layout,
                                       const std::string& canonical_name);

class Checkpoint {
 public:
  // `dir` may be the HF top level, an original/ directory, or a directory holding original/
  // only; the HF layout is preferred when both are present unless `prefer_original`.
  static Checkpoint open(const std::filesystem::path& dir, bool prefer_original = false);

  const ModelConfig& config() const { return config_; }
  CheckpointLayout layout() const { return layout_; }
  const std::filesystem::path& dir() const { return dir_; }  // where the config.json was found
  // Path of tokenizer.json beside the checkpoint, or empty when there is none.
  std::filesystem::path tokenizer_json() const;

  // The pieces (in order) whose concatenation is canonical tensor `spec`; throws if missing.
  std::vector<std::span<const std::byte>> canonical_pieces(const TensorSpec& spec) const;

  // Sum of the sizes of the safetensors files (what the converter will read).
  uint64_t total_file_bytes() const;

  // The safetensors files in the order they were opened, and the file holding a stored tensor
  // (nullptr if none).
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  const SafetensorsFile* shard_of(const std::string& source_name) const;

 private:
  std::filesystem::path dir_;
  CheckpointLayout layout_ = CheckpointLayout::kHF;
  ModelConfig config_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> tensor_shard_;  // source tensor name -> index into shards_
};

}  // namespace gptoss::conv
