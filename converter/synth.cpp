// synth.cpp — the streaming synthetic checkpoint writer (HF shards + index, or original/), filled
// by host/synth_weights.h. Memory stays bounded by the safetensors writer's two chunk buffers
// whatever the shape.
#include "converter/synth.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "host/error.h"

namespace gptoss::conv {

namespace fs = std::filesystem;

std::vector<SynthShard> synth_shard_plan(const ModelConfig& config, CheckpointLayout layout,
                                         uint64_t shard_bytes) {
  std::vector<SynthShard> shards(1);
  for (const auto& spec : canonical_tensors(config)) {
    for (auto& piece : source_pieces(config, layout, spec.name)) {
      const uint64_t n = piece.num_bytes();
      if (!shards.back().tensors.empty() && shards.back().tensor_bytes + n > shard_bytes) {
        shards.emplace_back();
      }
      shards.back().tensors.push_back(std::move(piece));
      shards.back().canonical.push_back(spec.name);
      shards.back().tensor_bytes += n;
    }
  }
  const int count = static_cast<int>(shards.size());
  for (int k = 0; k < count; ++k) {
    // original/ with one file keeps the 20b release's single model.safetensors.
    shards[k].file = layout == CheckpointLayout::kOriginal && count == 1
                         ? "model.safetensors"
                         : fmt::format("model-{:05d}-of-{:05d}.safetensors", k, count - 1);
  }
  return shards;
}

ModelConfig synth_config(const std::string& shape, int layers, int experts, int vocab) {
  ModelConfig c = ModelConfig::preset(shape);
  if (layers > 0) {
    c.num_layers = layers;
    c.layer_sliding = default_layer_pattern(layers);
  }
  if (experts > 0) {
    c.num_experts = experts;
    c.experts_per_token = std::min(c.experts_per_token, experts);
  }
  if (vocab > 0) c.vocab_size = vocab;
  c.validate();
  return c;
}

namespace {

void write_text(const fs::path& path, const std::string& text) {
  const fs::path tmp = fs::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.good()) {
      throw Error(fmt::format("cannot write '{}'", tmp.string()),
                  "check that the output directory is writable and has free space");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(fmt::format("cannot rename '{}': {}", tmp.string(), ec.message()));
}

}  // namespace

SynthWriteResult write_synth_checkpoint(const fs::path& dir, const ModelConfig& config,
                                        uint64_t seed, const SynthWriteOptions& options) {
  config.validate();
  const bool hf = options.layout == CheckpointLayout::kHF;
  const fs::path out_dir = hf ? dir : dir / "original";
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) {
    throw Error(fmt::format("cannot create '{}': {}", out_dir.string(), ec.message()),
                "pick a writable output directory");
  }

  const auto shards = synth_shard_plan(config, options.layout, options.shard_bytes);
  const int num_shards = static_cast<int>(shards.size());
  const bool single_original = !hf && num_shards == 1;
  uint64_t tensor_bytes = 0;
  std::vector<std::string> names;
  for (const auto& s : shards) {
    names.push_back(s.file);
    tensor_bytes += s.tensor_bytes;
  }
  const auto specs = canonical_tensors(config);
  std::map<std::string, const TensorSpec*> spec_of;
  for (const auto& spec : specs) spec_of[spec.name] = &spec;

  // An existing checkpoint of this layout is only replaced with force (the rule of `gptoss
  // convert`); the other layout's files beside it (HF top level, original/) are not one.
  if (!options.force) {
    std::vector<std::string> existing;
    for (const auto& entry : fs::directory_iterator(out_dir)) {
      const std::string f = entry.path().filename().string();
      if (f == "config.json" || f == "model.safetensors.index.json" ||
          entry.path().extension() == ".safetensors") {
        existing.push_back(f);
      }
    }
    if (!existing.empty()) {
      std::sort(existing.begin(), existing.end());
      throw Error(fmt::format("'{}' already holds a checkpoint ({}{})", out_dir.string(),
                              existing.front(), existing.size() > 1 ? ", ..." : ""),
                  "pass --force to replace it, or choose another -o");
    }
  }
  // Refuse to mix with another checkpoint's weight files: a stale shard would be picked up.
  std::set<std::string> ours(names.begin(), names.end());
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    const std::string f = entry.path().filename().string();
    const bool weights =
        entry.path().extension() == ".safetensors" || f == "model.safetensors.index.json";
    if (weights && !ours.count(f) && f != "model.safetensors.index.json") {
      throw Error(fmt::format("'{}' already holds '{}', which this checkpoint would not replace",
                              out_dir.string(), f),
                  "write into an empty directory or remove the old weight files");
    }
  }
  // A stale index would describe other shards until the new one is written last.
  fs::remove(out_dir / "model.safetensors.index.json", ec);

  SafetensorsWriteOptions wopt;
  wopt.metadata = {{"format", "pt"}, {"gptoss_synth_seed", std::to_string(seed)}};
  wopt.fill_threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  SynthWriteResult result;
  result.tensor_bytes = tensor_bytes;
  result.num_shards = num_shards;
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t done_before = 0;
  for (int k = 0; k < num_shards; ++k) {
    std::vector<SafetensorsEntry> entries;
    for (size_t i = 0; i < shards[k].tensors.size(); ++i) {
      const SourcePiece& piece = shards[k].tensors[i];
      const TensorSpec* spec = spec_of.at(shards[k].canonical[i]);
      const uint64_t base = piece.canonical_offset;
      entries.push_back({piece.name, piece.dtype, piece.shape,
                         [&config, seed, spec, base](uint64_t off, std::span<std::byte> out) {
                           synth_fill(config, seed, *spec, base + off, out);
                         }});
      weight_map[piece.name] = names[k];
    }
    if (options.progress) {
      wopt.progress = [&, done_before](uint64_t done) {
        options.progress(done_before + done, tensor_bytes);
      };
    }
    result.file_bytes += write_safetensors(out_dir / names[k], entries, wopt);
    done_before += shards[k].tensor_bytes;
  }

  if (hf) {
    write_text(out_dir / "config.json", config.to_hf_json().dump(2) + "\n");
    const nlohmann::json gen = {{"bos_token_id", 199998},
                                {"do_sample", true},
                                {"eos_token_id", {200002, 199999, 200012}},
                                {"pad_token_id", 199999},
                                {"transformers_version", "4.55.0.dev0"}};
    write_text(out_dir / "generation_config.json", gen.dump(2) + "\n");
  } else {
    write_text(out_dir / "config.json", config.to_original_json().dump(2) + "\n");
    nlohmann::json dtypes = nlohmann::json::object();
    for (const auto& shard : shards) {
      for (const auto& t : shard.tensors) {
        const std::string& n = t.name;
        const bool blocks = n.size() > 7 && n.compare(n.size() - 7, 7, ".blocks") == 0;
        const bool scales = n.size() > 7 && n.compare(n.size() - 7, 7, ".scales") == 0;
        dtypes[n] = blocks ? "FP4" : scales ? "UE8" : std::string(dtype_name(t.dtype));
      }
    }
    write_text(out_dir / "dtypes.json", dtypes.dump(2) + "\n");
  }
  if (!single_original) {
    const nlohmann::json index = {{"metadata", {{"total_size", tensor_bytes}}},
                                  {"weight_map", weight_map}};
    write_text(out_dir / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  return result;
}

}  // namespace gptoss::conv
