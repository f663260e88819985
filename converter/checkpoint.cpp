// checkpoint.cpp — opens a gpt-oss checkpoint directory (HF top level or original/), maps its
// safetensors files, checks every tensor the config implies (presence, dtype, shape, nothing
// unexpected) and serves canonical tensors as byte pieces of the mapped files.
#include "converter/checkpoint.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "host/error.h"

namespace gptoss::conv {

namespace fs = std::filesystem;
namespace tn = tensor_names;

uint64_t SourcePiece::num_bytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// The HF per-layer name for a canonical suffix (qkv is handled by the caller).
const char* hf_layer_name(std::string_view suffix) {
  if (suffix == tn::kAttnNorm) return "input_layernorm.weight";
  if (suffix == tn::kSinks) return "self_attn.sinks";
  if (suffix == tn::kOutWeight) return "self_attn.o_proj.weight";
  if (suffix == tn::kOutBias) return "self_attn.o_proj.bias";
  if (suffix == tn::kMlpNorm) return "post_attention_layernorm.weight";
  if (suffix == tn::kRouterWeight) return "mlp.router.weight";
  if (suffix == tn::kRouterBias) return "mlp.router.bias";
  if (suffix == tn::kMlp1Blocks) return "mlp.experts.gate_up_proj_blocks";
  if (suffix == tn::kMlp1Scales) return "mlp.experts.gate_up_proj_scales";
  if (suffix == tn::kMlp1Bias) return "mlp.experts.gate_up_proj_bias";
  if (suffix == tn::kMlp2Blocks) return "mlp.experts.down_proj_blocks";
  if (suffix == tn::kMlp2Scales) return "mlp.experts.down_proj_scales";
  if (suffix == tn::kMlp2Bias) return "mlp.experts.down_proj_bias";
  return nullptr;
}

// The original/ per-layer name (FACTS.md 2.4).
const char* original_layer_name(std::string_view suffix) {
  if (suffix == tn::kAttnNorm) return "attn.norm.scale";
  if (suffix == tn::kQkvWeight) return "attn.qkv.weight";
  if (suffix == tn::kQkvBias) return "attn.qkv.bias";
  if (suffix == tn::kSinks) return "attn.sinks";
  if (suffix == tn::kOutWeight) return "attn.out.weight";
  if (suffix == tn::kOutBias) return "attn.out.bias";
  if (suffix == tn::kMlpNorm) return "mlp.norm.scale";
  if (suffix == tn::kRouterWeight) return "mlp.gate.weight";
  if (suffix == tn::kRouterBias) return "mlp.gate.bias";
  if (suffix == tn::kMlp1Blocks) return "mlp.mlp1_weight.blocks";
  if (suffix == tn::kMlp1Scales) return "mlp.mlp1_weight.scales";
  if (suffix == tn::kMlp1Bias) return "mlp.mlp1_bias";
  if (suffix == tn::kMlp2Blocks) return "mlp.mlp2_weight.blocks";
  if (suffix == tn::kMlp2Scales) return "mlp.mlp2_weight.scales";
  if (suffix == tn::kMlp2Bias) return "mlp.mlp2_bias";
  return nullptr;
}

const TensorSpec* find_spec(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const auto& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(fmt::format("cannot read '{}'", path.string()), "check the path and permissions");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("'{}' is not valid JSON ({})", path.string(), e.what()),
                "the file is damaged: re-download or regenerate it");
  }
}

// HF configs carry model_type / num_local_experts; original/ configs carry num_experts.
bool is_hf_config(const nlohmann::json& j) {
  return j.is_object() && (j.contains("model_type") || j.contains("num_local_experts"));
}

std::string config_summary(const ModelConfig& c) {
  return fmt::format(
      "layers={} experts={} vocab={} hidden={} intermediate={} heads={}/{} "
      "head_dim={}",
      c.num_layers, c.num_experts, c.vocab_size, c.hidden, c.intermediate, c.num_heads,
      c.num_kv_heads, c.head_dim);
}

}  // namespace

std::vector<SourcePiece> source_pieces(const ModelConfig& c, CheckpointLayout layout,
                                       const std::string& canonical_name) {
  int layer = -1;
  std::string suffix;
  const bool ok = split_canonical_name(canonical_name, &layer, &suffix);
  if (!ok || layer >= c.num_layers) {
    throw Error(fmt::format("'{}' is not a canonical tensor of a {}-layer model", canonical_name,
                            c.num_layers));
  }
  // Canonical dtype and shape come from the one list in host/tensor_spec.h.
  ModelConfig one_layer = c;
  const std::string lookup = layer >= 0 ? layer_tensor_name(0, suffix) : suffix;
  one_layer.num_layers = 1;
  one_layer.layer_sliding.assign(1, 1);
  const auto specs = canonical_tensors(one_layer);
  const TensorSpec* spec = find_spec(specs, lookup);
  if (spec == nullptr) {
    throw Error(fmt::format("'{}' is not a canonical tensor name", canonical_name));
  }
  const bool hf = layout == CheckpointLayout::kHF;
  std::vector<SourcePiece> out;
  auto one = [&](std::string name) {
    out.push_back({std::move(name), spec->dtype, spec->shape, 0});
  };
  if (layer < 0) {
    if (suffix == tn::kEmbed) one(hf ? "model.embed_tokens.weight" : "embedding.weight");
    if (suffix == tn::kFinalNorm) one(hf ? "model.norm.weight" : "norm.scale");
    if (suffix == tn::kLmHead) one(hf ? "lm_head.weight" : "unembedding.weight");
  } else if (!hf) {
    one(fmt::format("block.{}.{}", layer, original_layer_name(suffix)));
  } else if (suffix == tn::kQkvWeight || suffix == tn::kQkvBias) {
    // Plain row slicing q | k | v (hf-convert: no head permutation).
    const bool weight = suffix == tn::kQkvWeight;
    const int64_t rows[3] = {c.q_dim(), c.kv_dim(), c.kv_dim()};
    const char* names[3] = {"q_proj", "k_proj", "v_proj"};
    uint64_t offset = 0;
    for (int i = 0; i < 3; ++i) {
      SourcePiece p{
          fmt::format("model.layers.{}.self_attn.{}.{}", layer, names[i],
                      weight ? "weight" : "bias"),
          DType::kBF16,
          weight ? std::vector<int64_t>{rows[i], c.hidden} : std::vector<int64_t>{rows[i]}, offset};
      offset += p.num_bytes();
      out.push_back(std::move(p));
    }
  } else {
    one(fmt::format("model.layers.{}.{}", layer, hf_layer_name(suffix)));
  }
  GPTOSS_CHECK(!out.empty(), "no source tensor for canonical '{}'", canonical_name);
  return out;
}

Checkpoint Checkpoint::open(const fs::path& dir_in, bool prefer_original) {
  std::error_code ec;
  if (!fs::exists(dir_in, ec)) {
    throw Error(fmt::format("checkpoint directory '{}' does not exist", dir_in.string()),
                "pass the directory that holds config.json (or its original/ folder)");
  }
  if (!fs::is_directory(dir_in, ec)) {
    throw Error(fmt::format("'{}' is not a directory", dir_in.string()),
                "pass the checkpoint directory, not one of its files");
  }

  // Find the candidates: an HF config at the top, an original/ config below or at the top.
  fs::path hf_dir, orig_dir;
  nlohmann::json hf_json, orig_json;
  if (fs::exists(dir_in / "config.json")) {
    auto j = read_json(dir_in / "config.json");
    if (is_hf_config(j)) {
      hf_dir = dir_in;
      hf_json = std::move(j);
    } else {
      orig_dir = dir_in;
      orig_json = std::move(j);
    }
  }
  if (orig_dir.empty() && fs::exists(dir_in / "original" / "config.json")) {
    orig_dir = dir_in / "original";
    orig_json = read_json(orig_dir / "config.json");
  }
  if (hf_dir.empty() && orig_dir.empty()) {
    throw Error(fmt::format("no config.json in '{}' or '{}'", dir_in.string(),
                            (dir_in / "original").string()),
                "pass a gpt-oss checkpoint directory (HF layout or its original/ folder)");
  }

  Checkpoint ck;
  const bool use_original = !orig_dir.empty() && (prefer_original || hf_dir.empty());
  ck.layout_ = use_original ? CheckpointLayout::kOriginal : CheckpointLayout::kHF;
  ck.dir_ = use_original ? orig_dir : hf_dir;
  ck.config_ = ModelConfig::from_json(use_original ? orig_json : hf_json,
                                      (ck.dir_ / "config.json").string());
  const std::string where = ck.dir_.string();

  // Shards: through the index when there is one (every tensor resolved by weight_map), else
  // every *.safetensors in the directory.
  const fs::path index_path = ck.dir_ / "model.safetensors.index.json";
  std::map<std::string, size_t> file_idx;
  auto open_shard = [&](const std::string& file) -> size_t {
    auto it = file_idx.find(file);
    if (it != file_idx.end()) return it->second;
    const fs::path p = ck.dir_ / file;
    if (!fs::exists(p)) {
      throw Error(fmt::format("{}: shard '{}' named by the index is missing", where, file),
                  "the download is incomplete: fetch every model-*.safetensors file");
    }
    ck.shards_.push_back(SafetensorsFile::open(p));
    file_idx[file] = ck.shards_.size() - 1;
    return ck.shards_.size() - 1;
  };
  if (fs::exists(index_path)) {
    const auto index = read_json(index_path);
    const auto wm = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || wm == index.end() || !wm->is_object()) {
      throw Error(fmt::format("{}: no weight_map object", index_path.string()),
                  "the index file is damaged: re-download or regenerate it");
    }
    for (const auto& [name, file_v] : wm->items()) {
      if (!file_v.is_string()) {
        throw Error(
            fmt::format("{}: weight_map entry '{}' is not a file name", index_path.string(), name),
            "the index file is damaged: re-download or regenerate it");
      }
      const std::string file = file_v.get<std::string>();
      // Shard names are plain file names in the checkpoint directory; never follow a path out.
      if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
        throw Error(fmt::format("{}: weight_map entry '{}' names '{}', not a file in the directory",
                                index_path.string(), name, file),
                    "shards must sit beside the index: fix or re-download the index file");
      }
      const size_t s = open_shard(file);
      if (ck.shards_[s].find(name) == nullptr) {
        throw Error(fmt::format("{}: weight_map puts '{}' in '{}', but that file has no such "
                                "tensor",
                                where, name, file),
                    "the shard and the index disagree: re-download the checkpoint");
      }
      ck.tensor_shard_[name] = s;
    }
  } else {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(ck.dir_)) {
      if (entry.is_regular_file() && entry.path().extension() == ".safetensors") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      throw Error(
          fmt::format("{}: no model.safetensors.index.json and no *.safetensors files", where),
          "the download is incomplete: fetch the weight files");
    }
    for (const auto& p : files) {
      const size_t s = open_shard(p.filename().string());
      for (const auto& t : ck.shards_[s].tensors()) {
        auto [it, inserted] = ck.tensor_shard_.emplace(t.name, s);
        if (!inserted) {
          throw Error(
              fmt::format("{}: tensor '{}' is in both '{}' and '{}'", where, t.name,
                          ck.shards_[it->second].path().filename().string(), p.filename().string()),
              "remove the stale file from the directory");
        }
      }
    }
  }

  // Every expected tensor: present, right dtype, right shape; nothing unexpected.
  const std::string hint = fmt::format(
      "the weights do not match {}/config.json ({}): use the config.json that came with them, "
      "or re-download / regenerate the checkpoint",
      where, config_summary(ck.config_));
  std::set<std::string> expected;
  for (const auto& spec : canonical_tensors(ck.config_)) {
    for (const auto& piece : source_pieces(ck.config_, ck.layout_, spec.name)) {
      expected.insert(piece.name);
      auto it = ck.tensor_shard_.find(piece.name);
      if (it == ck.tensor_shard_.end()) {
        throw Error(fmt::format("{}: tensor '{}' is missing (expected {} {})", where, piece.name,
                                dtype_name(piece.dtype), shape_str(piece.shape)),
                    fs::exists(index_path)
                        ? "it is not in model.safetensors.index.json's weight_map: is the "
                          "checkpoint complete and for this model?"
                        : hint);
      }
      const SafetensorsFile& file = ck.shards_[it->second];
      const SafetensorsTensor* t = file.find(piece.name);
      const std::string file_name = file.path().filename().string();
      if (t->dtype != piece.dtype) {
        throw Error(
            fmt::format("{}: tensor '{}' in '{}' has dtype {}, expected {}", where, piece.name,
                        file_name, dtype_name(t->dtype), dtype_name(piece.dtype)),
            "gpt-oss stores BF16 weights and U8 MXFP4 blocks/scales; a dequantized or "
            "re-typed checkpoint is not supported: use the original release");
      }
      if (t->shape != piece.shape) {
        throw Error(fmt::format("{}: tensor '{}' in '{}' has shape {}, expected {}", where,
                                piece.name, file_name, shape_str(t->shape), shape_str(piece.shape)),
                    hint);
      }
    }
  }
  for (const auto& [name, s] : ck.tensor_shard_) {
    if (!expected.count(name)) {
      throw Error(fmt::format("{}: unexpected tensor '{}' in '{}'", where, name,
                              ck.shards_[s].path().filename().string()),
                  hint);
    }
  }
  return ck;
}

fs::path Checkpoint::tokenizer_json() const {
  std::error_code ec;
  if (fs::is_regular_file(dir_ / "tokenizer.json", ec)) return dir_ / "tokenizer.json";
  if (layout_ == CheckpointLayout::kOriginal && dir_.filename() == "original" &&
      fs::is_regular_file(dir_.parent_path() / "tokenizer.json", ec)) {
    return dir_.parent_path() / "tokenizer.json";
  }
  return {};
}

const SafetensorsFile* Checkpoint::shard_of(const std::string& source_name) const {
  auto it = tensor_shard_.find(source_name);
  return it == tensor_shard_.end() ? nullptr : &shards_[it->second];
}

std::vector<std::span<const std::byte>> Checkpoint::canonical_pieces(const TensorSpec& spec) const {
  std::vector<std::span<const std::byte>> out;
  uint64_t total = 0;
  for (const auto& piece : source_pieces(config_, layout_, spec.name)) {
    const SafetensorsFile* file = shard_of(piece.name);
    if (file == nullptr) {
      throw Error(fmt::format("{}: tensor '{}' (for canonical '{}') is missing", dir_.string(),
                              piece.name, spec.name));
    }
    out.push_back(file->data(piece.name));
    total += out.back().size();
  }
  if (total != spec.num_bytes()) {
    throw Error(fmt::format("{}: canonical '{}' {} {} needs {} bytes, the checkpoint holds {}",
                            dir_.string(), spec.name, dtype_name(spec.dtype), shape_str(spec.shape),
                            spec.num_bytes(), total));
  }
  return out;
}

uint64_t Checkpoint::total_file_bytes() const {
  uint64_t n = 0;
  for (const auto& s : shards_) n += s.file_size();
  return n;
}

}  // namespace gptoss::conv
