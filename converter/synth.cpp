// synth.cpp — host side of the synthetic checkpoint generator: canonical-tensor fills built on
// synth_gen.h, and the streaming checkpoint writer (HF shards + index, or original/). Memory
// stays bounded by the safetensors writer's two chunk buffers whatever the shape.
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
namespace tn = tensor_names;

SynthTensorParams synth_tensor_params(const ModelConfig& c, const std::string& name) {
  int layer = -1;
  std::string suffix;
  if (!split_canonical_name(name, &layer, &suffix) || layer >= c.num_layers) {
    throw Error(fmt::format("synth: '{}' is not a canonical tensor of this model", name));
  }
  struct Row {
    std::string_view suffix;
    SynthKind kind;
    bool per_layer;
  };
  static constexpr std::array<Row, 18> kRows = {{
      {tn::kEmbed, SynthKind::kEmbed, false},
      {tn::kAttnNorm, SynthKind::kAttnNorm, true},
      {tn::kQkvWeight, SynthKind::kQkvWeight, true},
      {tn::kQkvBias, SynthKind::kQkvBias, true},
      {tn::kSinks, SynthKind::kSinks, true},
      {tn::kOutWeight, SynthKind::kOutWeight, true},
      {tn::kOutBias, SynthKind::kOutBias, true},
      {tn::kMlpNorm, SynthKind::kMlpNorm, true},
      {tn::kRouterWeight, SynthKind::kRouterWeight, true},
      {tn::kRouterBias, SynthKind::kRouterBias, true},
      {tn::kMlp1Blocks, SynthKind::kMlp1Blocks, true},
      {tn::kMlp1Scales, SynthKind::kMlp1Scales, true},
      {tn::kMlp1Bias, SynthKind::kMlp1Bias, true},
      {tn::kMlp2Blocks, SynthKind::kMlp2Blocks, true},
      {tn::kMlp2Scales, SynthKind::kMlp2Scales, true},
      {tn::kMlp2Bias, SynthKind::kMlp2Bias, true},
      {tn::kFinalNorm, SynthKind::kFinalNorm, false},
      {tn::kLmHead, SynthKind::kLmHead, false},
  }};
  for (const auto& r : kRows) {
    if (r.suffix != suffix || r.per_layer != (layer >= 0)) continue;
    SynthTensorParams p;
    p.layer = layer >= 0 ? static_cast<uint32_t>(layer) : 0u;
    p.kind = r.kind;
    switch (r.kind) {
      case SynthKind::kQkvWeight:
      case SynthKind::kRouterWeight:
      case SynthKind::kLmHead:
      case SynthKind::kMlp1Blocks:
      case SynthKind::kMlp1Scales:
        p.fan_in = static_cast<uint32_t>(c.hidden);
        break;
      case SynthKind::kOutWeight:
        p.fan_in = static_cast<uint32_t>(c.q_dim());
        break;
      case SynthKind::kMlp2Blocks:
      case SynthKind::kMlp2Scales:
        p.fan_in = static_cast<uint32_t>(c.intermediate);
        break;
      default:
        p.fan_in = 0;
        break;
    }
    return p;
  }
  throw Error(fmt::format("synth: '{}' is not a canonical tensor name", name));
}

namespace {

// Host fast path for block bytes: a 14-bit (two 7-bit nibble draws) -> byte table built from
// synth_fp4_nibble itself, so it is bit-identical to the device formula.
const std::array<uint8_t, 1u << 14>& block_byte_table() {
  static const auto table = [] {
    std::array<uint8_t, 1u << 14> t{};
    for (uint32_t i = 0; i < t.size(); ++i) {
      const uint32_t bits = (i & 0x7fu) | ((i >> 7) << 8);
      t[i] = static_cast<uint8_t>(synth_fp4_nibble(bits) | (synth_fp4_nibble(bits >> 8) << 4));
    }
    return t;
  }();
  return table;
}

void fill_bf16(uint64_t key, bool is_norm, int shift, uint64_t byte_offset, std::byte* out,
               size_t n) {
  uint64_t pos = byte_offset;
  size_t i = 0;
  auto put_partial = [&](size_t count) {  // byte-wise for an odd start or end
    for (size_t k = 0; k < count; ++k, ++i, ++pos) {
      const uint16_t v = synth_bf16_value(key, is_norm, shift, pos >> 1);
      out[i] = static_cast<std::byte>((pos & 1) ? (v >> 8) : (v & 0xff));
    }
  };
  if (pos & 1) put_partial(std::min<size_t>(1, n));
  const size_t pairs = (n - i) / 2;
  uint64_t elem = pos >> 1;
  for (size_t k = 0; k < pairs; ++k, ++elem) {
    const uint16_t v = synth_bf16_value(key, is_norm, shift, elem);
    out[i + 2 * k] = static_cast<std::byte>(v & 0xff);  // little-endian
    out[i + 2 * k + 1] = static_cast<std::byte>(v >> 8);
  }
  i += 2 * pairs;
  pos += 2 * pairs;
  put_partial(n - i);
}

void fill_blocks(uint64_t key, uint64_t byte_offset, std::byte* out, size_t n) {
  const auto& table = block_byte_table();
  size_t i = 0;
  uint64_t pos = byte_offset;
  auto one = [&](uint64_t h, uint32_t lane) {
    const uint32_t bits = static_cast<uint32_t>(h >> (lane * 16u));
    out[i++] = static_cast<std::byte>(table[(bits & 0x7fu) | ((bits >> 1) & 0x3f80u)]);
    ++pos;
  };
  while (i < n && (pos & 3)) one(synth_hash(key, pos >> 2), static_cast<uint32_t>(pos & 3));
  while (n - i >= 4) {
    const uint64_t h = synth_hash(key, pos >> 2);
    one(h, 0);
    one(h, 1);
    one(h, 2);
    one(h, 3);
  }
  while (i < n) one(synth_hash(key, pos >> 2), static_cast<uint32_t>(pos & 3));
}

void fill_scales(uint64_t key, uint32_t base, uint64_t byte_offset, std::byte* out, size_t n) {
  size_t i = 0;
  for (; i < n && ((byte_offset + i) & 7); ++i) {
    out[i] = static_cast<std::byte>(synth_scale_byte(key, base, byte_offset + i));
  }
  // Eight scales share one hash (synth_scale_byte): hash once per group.
  for (; n - i >= 8; i += 8) {
    const uint64_t h = synth_hash(key, (byte_offset + i) >> 3);
    for (uint32_t lane = 0; lane < 8; ++lane) {
      const uint32_t r = static_cast<uint32_t>(h >> (lane * 8u)) & 3u;
      out[i + lane] = static_cast<std::byte>(base + (r == 3u ? 1u : 0u) - (r == 0u ? 1u : 0u));
    }
  }
  for (; i < n; ++i) out[i] = static_cast<std::byte>(synth_scale_byte(key, base, byte_offset + i));
}

}  // namespace

void synth_fill(const ModelConfig& config, uint64_t seed, const TensorSpec& canonical,
                uint64_t byte_offset, std::span<std::byte> out) {
  const SynthTensorParams p = synth_tensor_params(config, canonical.name);
  const uint64_t total = canonical.num_bytes();
  GPTOSS_CHECK(byte_offset <= total && out.size() <= total - byte_offset,
               "synth: bytes [{}, {}) are outside '{}' ({} bytes)", byte_offset,
               byte_offset + out.size(), canonical.name, total);
  const bool is_u8 = p.kind == SynthKind::kMlp1Blocks || p.kind == SynthKind::kMlp1Scales ||
                     p.kind == SynthKind::kMlp2Blocks || p.kind == SynthKind::kMlp2Scales;
  GPTOSS_CHECK(canonical.dtype == (is_u8 ? DType::kU8 : DType::kBF16),
               "synth: '{}' has dtype {}, the generator makes {}", canonical.name,
               dtype_name(canonical.dtype), is_u8 ? "U8" : "BF16");
  const uint64_t key = synth_tensor_key(seed, p.layer, p.kind);
  switch (p.kind) {
    case SynthKind::kMlp1Blocks:
    case SynthKind::kMlp2Blocks:
      fill_blocks(key, byte_offset, out.data(), out.size());
      break;
    case SynthKind::kMlp1Scales:
    case SynthKind::kMlp2Scales:
      fill_scales(key, synth_scale_base(p.fan_in), byte_offset, out.data(), out.size());
      break;
    default:
      fill_bf16(key, synth_is_norm(p.kind), synth_bf16_shift(p.kind, p.fan_in), byte_offset,
                out.data(), out.size());
      break;
  }
}

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
