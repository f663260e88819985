// test_checkpoint.cpp — the checkpoint directory reader on synthetic checkpoints (HF sharded,
// HF single file, original/), its named errors for missing / wrong-shape / wrong-dtype /
// unexpected tensors, and MXFP4 element decoding against the FACTS.md 2.3 table.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "converter/checkpoint.h"
#include "converter/synth.h"
#include "host/error.h"
#include "host/numeric.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using gptoss::DType;
using gptoss::ModelConfig;
using gptoss::conv::Checkpoint;
using gptoss::conv::CheckpointLayout;
using gptoss::test::TempDir;

namespace {

// A small model: real widths, 2 layers, 4 experts, a 1000-token vocabulary.
ModelConfig small_config() { return gptoss::conv::synth_config("tiny", 2, 4, 1000); }

void write_small(const fs::path& dir, CheckpointLayout layout, uint64_t shard_bytes) {
  gptoss::conv::SynthWriteOptions opt;
  opt.layout = layout;
  opt.shard_bytes = shard_bytes;
  gptoss::conv::write_synth_checkpoint(dir, small_config(), /*seed=*/5, opt);
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void write_json(const fs::path& p, const nlohmann::json& j) { std::ofstream(p) << j.dump(2); }

// Rewrites the shard holding `victim` through `edit`, which may change or drop entries.
using EntryEdit = std::function<void(std::vector<gptoss::conv::SafetensorsEntry>&)>;
void rewrite_shard(const fs::path& file, const EntryEdit& edit) {
  const auto src =
      std::make_shared<gptoss::conv::SafetensorsFile>(gptoss::conv::SafetensorsFile::open(file));
  std::vector<gptoss::conv::SafetensorsEntry> entries;
  for (const auto& t : src->tensors()) {
    const std::string name = t.name;
    entries.push_back(
        {t.name, t.dtype, t.shape, [src, name](uint64_t off, std::span<std::byte> out) {
           const auto d = src->data(name);
           std::copy_n(d.begin() + static_cast<long>(off), out.size(), out.begin());
         }});
  }
  edit(entries);
  gptoss::conv::write_safetensors(file, entries, src->metadata());
}

fs::path shard_holding(const fs::path& dir, const std::string& tensor) {
  return dir /
         read_json(dir / "model.safetensors.index.json")["weight_map"][tensor].get<std::string>();
}

std::string open_error(const fs::path& dir) {
  try {
    Checkpoint::open(dir);
  } catch (const gptoss::Error& e) {
    CHECK_FALSE(e.hint().empty());
    return e.what();
  }
  FAIL("Checkpoint::open accepted a broken checkpoint");
  return {};
}

auto zero_fill = [](uint64_t, std::span<std::byte> out) {
  std::fill(out.begin(), out.end(), std::byte{0});
};

}  // namespace

TEST_CASE("checkpoint: sharded HF synthetic checkpoint opens and validates", "[checkpoint]") {
  TempDir dir;
  write_small(dir.path, CheckpointLayout::kHF, /*shard_bytes=*/8u << 20);
  const auto ck = Checkpoint::open(dir.path);
  CHECK(ck.layout() == CheckpointLayout::kHF);
  CHECK(ck.config() == small_config());
  CHECK(ck.dir() == dir.path);
  CHECK(ck.tokenizer_json().empty());
  REQUIRE(ck.shards().size() >= 3);
  // Zero-based names, "of" = count - 1 (FACTS.md 2.1).
  const int n = static_cast<int>(ck.shards().size());
  std::set<std::string> files;
  for (const auto& s : ck.shards()) files.insert(s.path().filename().string());
  for (int k = 0; k < n; ++k) {
    CHECK(files.count(fmt::format("model-{:05d}-of-{:05d}.safetensors", k, n - 1)) == 1);
  }
  // Layers straddle shards: layer 0's attention and the LM head live in different files.
  CHECK(ck.shard_of("model.layers.0.self_attn.q_proj.weight") != ck.shard_of("lm_head.weight"));
  // The index's total_size is the sum of the tensor bytes (no headers).
  uint64_t sum = 0;
  for (const auto& t : gptoss::canonical_tensors(ck.config())) sum += t.num_bytes();
  CHECK(read_json(dir.path / "model.safetensors.index.json")["metadata"]["total_size"] == sum);
  CHECK(ck.total_file_bytes() > sum);
  // 19 stored tensors per layer + 3 (FACTS.md 2.2), and qkv served as 3 pieces.
  const auto wm = read_json(dir.path / "model.safetensors.index.json")["weight_map"];
  CHECK(wm.size() == 19u * 2 + 3);
  const auto specs = gptoss::canonical_tensors(ck.config());
  for (const auto& spec : specs) {
    const auto pieces = ck.canonical_pieces(spec);
    const bool qkv = spec.name.find("qkv") != std::string::npos;
    CHECK(pieces.size() == (qkv ? 3u : 1u));
  }
  auto bad = specs[2];  // layers.0.qkv.weight with a wrong shape
  bad.shape[0] += 1;
  CHECK_THROWS_AS(ck.canonical_pieces(bad), gptoss::Error);
  bad.name = "layers.7.qkv.weight";
  CHECK_THROWS_WITH(ck.canonical_pieces(bad), Contains("layers.7.qkv.weight"));
}

TEST_CASE("checkpoint: single-file HF and original/ layouts open", "[checkpoint]") {
  TempDir dir;
  SECTION("HF, one shard, with and without the index") {
    write_small(dir.path, CheckpointLayout::kHF, /*shard_bytes=*/1ull << 40);
    CHECK(fs::exists(dir.path / "model-00000-of-00000.safetensors"));
    CHECK(Checkpoint::open(dir.path).shards().size() == 1);
    fs::remove(dir.path / "model.safetensors.index.json");
    const auto ck = Checkpoint::open(dir.path);  // every *.safetensors in the directory
    CHECK(ck.shards().size() == 1);
    const auto gen = read_json(dir.path / "generation_config.json");
    CHECK(gen["eos_token_id"] == nlohmann::json({200002, 199999, 200012}));
    CHECK(gen["pad_token_id"] == 199999);
    CHECK(gen["bos_token_id"] == 199998);
  }
  SECTION("original/, one file") {
    write_small(dir.path, CheckpointLayout::kOriginal, /*shard_bytes=*/1ull << 40);
    const fs::path orig = dir.path / "original";
    CHECK(fs::exists(orig / "model.safetensors"));
    CHECK_FALSE(fs::exists(orig / "model.safetensors.index.json"));
    CHECK(read_json(orig / "config.json").size() == 16);
    const auto dtypes = read_json(orig / "dtypes.json");
    CHECK(dtypes["block.0.mlp.mlp1_weight.blocks"] == "FP4");
    CHECK(dtypes["block.1.mlp.mlp2_weight.scales"] == "UE8");
    CHECK(dtypes["block.1.attn.qkv.weight"] == "BF16");
    for (const auto& d : {dir.path, orig}) {
      const auto ck = Checkpoint::open(d);
      CHECK(ck.layout() == CheckpointLayout::kOriginal);
      CHECK(ck.dir() == orig);
      CHECK(ck.config() == small_config());
      CHECK(ck.canonical_pieces(gptoss::canonical_tensors(ck.config())[2]).size() == 1);
    }
  }
  SECTION("original/, sharded, beside an HF top level") {
    write_small(dir.path, CheckpointLayout::kHF, /*shard_bytes=*/1ull << 40);
    write_small(dir.path, CheckpointLayout::kOriginal, /*shard_bytes=*/8u << 20);
    CHECK(fs::exists(dir.path / "original" / "model.safetensors.index.json"));
    CHECK(Checkpoint::open(dir.path).layout() == CheckpointLayout::kHF);
    const auto ck = Checkpoint::open(dir.path, /*prefer_original=*/true);
    CHECK(ck.layout() == CheckpointLayout::kOriginal);
    CHECK(ck.shards().size() > 1);
  }
}

TEST_CASE("checkpoint: problems are named (missing, shape, dtype, unexpected)", "[checkpoint]") {
  TempDir dir;
  write_small(dir.path, CheckpointLayout::kHF, /*shard_bytes=*/8u << 20);
  const std::string victim = "model.layers.1.self_attn.k_proj.weight";
  const fs::path shard = shard_holding(dir.path, victim);
  const int64_t hidden = small_config().hidden;

  SECTION("missing from the shard but listed in the index") {
    rewrite_shard(shard, [&](auto& entries) {
      std::erase_if(entries, [&](const auto& e) { return e.name == victim; });
    });
    CHECK_THAT(open_error(dir.path), Contains(victim) && Contains(shard.filename().string()));
  }
  SECTION("missing entirely") {
    rewrite_shard(shard, [&](auto& entries) {
      std::erase_if(entries, [&](const auto& e) { return e.name == victim; });
    });
    auto index = read_json(dir.path / "model.safetensors.index.json");
    index["weight_map"].erase(victim);
    write_json(dir.path / "model.safetensors.index.json", index);
    CHECK_THAT(open_error(dir.path),
               Contains(victim) && Contains("missing") && Contains("expected BF16 [512, 2880]"));
  }
  SECTION("wrong shape") {
    rewrite_shard(shard, [&](auto& entries) {
      for (auto& e : entries) {
        if (e.name == victim) {
          e.shape = {256, hidden};
          e.fill = zero_fill;
        }
      }
    });
    CHECK_THAT(open_error(dir.path), Contains(victim) && Contains("[256, 2880]") &&
                                         Contains("expected [512, 2880]") &&
                                         Contains(shard.filename().string()));
  }
  SECTION("wrong dtype") {
    rewrite_shard(shard, [&](auto& entries) {
      for (auto& e : entries) {
        if (e.name == victim) {
          e.dtype = DType::kF32;
          e.fill = zero_fill;
        }
      }
    });
    CHECK_THAT(open_error(dir.path), Contains(victim) && Contains("dtype F32, expected BF16"));
  }
  SECTION("unexpected tensor (the config has fewer layers than the weights)") {
    auto cfg = read_json(dir.path / "config.json");
    cfg["num_hidden_layers"] = 1;
    cfg["layer_types"] = {"sliding_attention"};
    write_json(dir.path / "config.json", cfg);
    CHECK_THAT(open_error(dir.path), Contains("unexpected tensor 'model.layers.1."));
  }
  SECTION("a shard named by the index is missing") {
    fs::remove(shard);
    CHECK_THAT(open_error(dir.path), Contains(shard.filename().string()));
  }
  SECTION("the index points outside the directory") {
    auto index = read_json(dir.path / "model.safetensors.index.json");
    index["weight_map"][victim] = "../elsewhere.safetensors";
    write_json(dir.path / "model.safetensors.index.json", index);
    CHECK_THAT(open_error(dir.path), Contains("../elsewhere.safetensors"));
  }
  SECTION("a damaged shard names the file") {
    fs::resize_file(shard, fs::file_size(shard) - 1);
    CHECK_THAT(open_error(dir.path), Contains(shard.filename().string()));
  }
  SECTION("no checkpoint at all") {
    CHECK_THAT(open_error(dir.path / "nope"), Contains("does not exist"));
    fs::create_directories(dir.path / "empty");
    CHECK_THAT(open_error(dir.path / "empty"), Contains("no config.json"));
    CHECK_THAT(open_error(dir.path / "config.json"), Contains("not a directory"));
  }
}

TEST_CASE("mxfp4: every byte value decodes per the FACTS.md 2.3 table", "[checkpoint][mxfp4]") {
  // Independent expected value: bit 3 sign, bits 2-1 exponent (bias 1), bit 0 mantissa; e = 0 is
  // subnormal (0 or 0.5); times 2^(scale - 127); low nibble = even element.
  auto e2m1 = [](int nib) {
    const int sign = (nib >> 3) & 1, e = (nib >> 1) & 3, m = nib & 1;
    const double mag = e == 0 ? 0.5 * m : std::ldexp(1.0 + 0.5 * m, e - 1);
    return sign ? -mag : mag;
  };
  int checked = 0;
  for (int scale = 0; scale <= 252; scale += (scale < 110 || scale > 140) ? 7 : 1) {
    for (int b = 0; b < 256; ++b) {
      // A row of 3 blocks; the byte under test sits at a different place in each block.
      uint8_t blocks[48], scales[3] = {static_cast<uint8_t>(scale), 127, 1};
      for (int i = 0; i < 48; ++i) blocks[i] = static_cast<uint8_t>(i * 37 + 11);
      const int pos = b % 16;
      blocks[pos] = static_cast<uint8_t>(b);
      const double s = std::ldexp(1.0, scale - 127);
      const int k = 2 * pos;  // element index of the low nibble in block 0
      CHECK(static_cast<double>(gptoss::mxfp4_element(blocks, scales, k)) == e2m1(b & 15) * s);
      CHECK(static_cast<double>(gptoss::mxfp4_element(blocks, scales, k + 1)) == e2m1(b >> 4) * s);
      // The same byte in block 2 uses scale byte 1 (2^-126).
      blocks[32 + pos] = static_cast<uint8_t>(b);
      CHECK(static_cast<double>(gptoss::mxfp4_element(blocks, scales, 64 + k + 1)) ==
            e2m1(b >> 4) * std::ldexp(1.0, -126));
      checked += 3;
    }
  }
  CHECK(checked > 3 * 256 * 40);
  uint8_t blocks[16] = {0x21}, nan_scale[1] = {255};
  CHECK(std::isnan(gptoss::mxfp4_element(blocks, nan_scale, 0)));
}
