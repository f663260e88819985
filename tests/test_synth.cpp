// test_synth.cpp — the synthetic checkpoint generator: pinned hashes (canonical bytes and written
// files) so any change to the generated bits is noticed, chunking invariance, the host fast path
// against the GPTOSS_HD per-value formulas, value statistics, read-back of written HF and
// original/ checkpoints against synth_fill, and a 120b plan sanity check (nothing written).
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "converter/checkpoint.h"
#include "converter/synth.h"
#include "host/error.h"
#include "host/numeric.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using gptoss::DType;
using gptoss::ModelConfig;
using gptoss::TensorSpec;
using gptoss::conv::CheckpointLayout;
using gptoss::conv::synth_fill;
using gptoss::test::TempDir;

namespace {

std::vector<std::byte> fill_all(const ModelConfig& c, uint64_t seed, const TensorSpec& t) {
  std::vector<std::byte> out(t.num_bytes());
  synth_fill(c, seed, t, 0, out);
  return out;
}

// XXH64 of all canonical tensors in canonical order, generated in chunks on two threads.
uint64_t canonical_hash(const ModelConfig& c, uint64_t seed) {
  constexpr size_t kChunk = 16u << 20;
  std::vector<std::byte> buf(kChunk);
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  for (const auto& t : gptoss::canonical_tensors(c)) {
    for (uint64_t off = 0; off < t.num_bytes(); off += kChunk) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, t.num_bytes() - off));
      const size_t half = n / 2;
      std::thread other([&] { synth_fill(c, seed, t, off + half, {buf.data() + half, n - half}); });
      synth_fill(c, seed, t, off, {buf.data(), half});
      other.join();
      XXH64_update(st, buf.data(), n);
    }
  }
  const uint64_t h = XXH64_digest(st);
  XXH64_freeState(st);
  return h;
}

uint64_t file_hash(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return XXH64(data.data(), data.size(), 0);
}

uint16_t bf16_at(const std::vector<std::byte>& b, size_t i) {
  return static_cast<uint16_t>(static_cast<unsigned>(b[2 * i]) |
                               (static_cast<unsigned>(b[2 * i + 1]) << 8));
}

const TensorSpec& spec_named(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const auto& s : specs) {
    if (s.name == name) return s;
  }
  FAIL("no canonical tensor " << name);
  return specs.front();
}

}  // namespace

TEST_CASE("synth: pinned hash of the canonical bytes of small shapes", "[synth]") {
  // A change to these values means every synthetic checkpoint (and every GPU-generated model)
  // changed: only update them together with the generator, on purpose.
  const auto small = gptoss::conv::synth_config("tiny", 2, 4, 1000);
  CHECK(canonical_hash(small, 1) == 0x1e8dc57c3758f529ull);
  CHECK(canonical_hash(small, 2) != canonical_hash(small, 1));
}

TEST_CASE("synth: pinned hash of the full tiny shape", "[synth][synth_tiny]") {
  const auto tiny = ModelConfig::preset("tiny");
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t h = canonical_hash(tiny, 1);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t bytes = 0;
  for (const auto& t : gptoss::canonical_tensors(tiny)) bytes += t.num_bytes();
  WARN(fmt::format("tiny canonical bytes {:.3f} GB generated + hashed in {:.1f} s ({:.2f} GB/s)",
                   bytes / 1e9, s, bytes / 1e9 / s));
  CHECK(h == 0x6bf19a4c13be3b16ull);
}

TEST_CASE("synth: any chunking gives the same bytes", "[synth]") {
  const auto c = gptoss::conv::synth_config("tiny", 1, 4, 64);
  for (const auto& t : gptoss::canonical_tensors(c)) {
    const auto whole = fill_all(c, 9, t);
    // Odd offsets and sizes cut BF16 elements and the 4-byte groups of block bytes.
    std::vector<std::byte> pieces(whole.size());
    uint64_t off = 0;
    size_t step = 1;
    while (off < whole.size()) {
      const size_t n = std::min<size_t>(step, whole.size() - off);
      synth_fill(c, 9, t, off, {pieces.data() + off, n});
      off += n;
      step = step * 3 + 1;
    }
    INFO(t.name);
    CHECK(pieces == whole);
  }
  const std::vector<TensorSpec> tensors = gptoss::canonical_tensors(c);
  const TensorSpec& t = tensors[1];  // the vector must outlive t
  std::vector<std::byte> one(1);
  CHECK_THROWS_AS(synth_fill(c, 9, t, t.num_bytes(), one), gptoss::Error);
  TensorSpec wrong = t;
  wrong.dtype = DType::kU8;
  CHECK_THROWS_AS(synth_fill(c, 9, wrong, 0, one), gptoss::Error);
  wrong.name = "layers.5.attn_norm.weight";
  CHECK_THROWS_AS(synth_fill(c, 9, wrong, 0, one), gptoss::Error);
}

TEST_CASE("synth: host fill equals the per-value GPTOSS_HD formulas", "[synth]") {
  // What a GPU kernel computes per element must equal what the host writes.
  using namespace gptoss::conv;
  const auto c = gptoss::conv::synth_config("tiny", 2, 2, 128);
  const uint64_t seed = 0xfeedbeefcafeull;
  for (const auto& t : gptoss::canonical_tensors(c)) {
    const auto p = synth_tensor_params(c, t.name);
    const uint64_t key = synth_tensor_key(seed, p.layer, p.kind);
    const auto bytes = fill_all(c, seed, t);
    INFO(t.name);
    size_t bad = 0;
    if (t.dtype == DType::kBF16) {
      const int shift = synth_bf16_shift(p.kind, p.fan_in);
      for (size_t i = 0; i < t.num_elements(); ++i) {
        bad += bf16_at(bytes, i) != synth_bf16_value(key, synth_is_norm(p.kind), shift, i);
      }
    } else if (p.kind == SynthKind::kMlp1Blocks || p.kind == SynthKind::kMlp2Blocks) {
      for (size_t i = 0; i < bytes.size(); ++i) {
        bad += static_cast<uint8_t>(bytes[i]) != synth_block_byte(key, i);
      }
    } else {
      const uint32_t base = synth_scale_base(p.fan_in);
      for (size_t i = 0; i < bytes.size(); ++i) {
        bad += static_cast<uint8_t>(bytes[i]) != synth_scale_byte(key, base, i);
      }
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("synth: integer BF16 construction rounds like the float conversion", "[synth]") {
  // synth_bf16_from_int must equal float_to_bf16(s * 2^-shift) (exact in float for |s| < 2^24).
  for (int shift : {0, 15, 19, 21, 30}) {
    for (int64_t s = -300000; s <= 300000; s += 7) {
      const float f = std::ldexp(static_cast<float>(s), -shift);
      REQUIRE(gptoss::conv::synth_bf16_from_int(static_cast<int32_t>(s), shift) ==
              gptoss::float_to_bf16(f));
    }
  }
}

TEST_CASE("synth: values have the intended magnitudes", "[synth]") {
  const auto c = gptoss::conv::synth_config("20b", 1, 4, 4096);
  const auto specs = gptoss::canonical_tensors(c);
  auto bf16_stats = [&](const std::string& name) {
    const auto b = fill_all(c, 3, spec_named(specs, name));
    double sum = 0, sq = 0, lo = 1e30, hi = -1e30;
    const size_t n = b.size() / 2;
    for (size_t i = 0; i < n; ++i) {
      const double v = gptoss::bf16_to_float(bf16_at(b, i));
      REQUIRE(std::isfinite(v));
      sum += v;
      sq += v * v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    struct {
      double mean, rms, lo, hi;
    } r{sum / n, std::sqrt(sq / n), lo, hi};
    return r;
  };
  const double inv_sqrt_h = 1.0 / std::sqrt(static_cast<double>(c.hidden));
  const auto qkv = bf16_stats("layers.0.qkv.weight");
  CHECK(qkv.rms == Approx(1.15 / 64).epsilon(0.02));  // ~1/sqrt(fan-in) (2^-6 vs 1/53.7)
  CHECK(std::abs(qkv.mean) < 0.01 * qkv.rms);
  CHECK(qkv.rms > 0.9 * inv_sqrt_h);
  CHECK(bf16_stats("layers.0.out.weight").rms == Approx(1.15 / 64).epsilon(0.02));
  const auto router = bf16_stats("layers.0.router.weight");
  CHECK(router.rms == Approx(4 * 1.15 / 64).epsilon(0.05));
  CHECK(bf16_stats("lm_head.weight").rms == Approx(4 * 1.15 / 64).epsilon(0.02));
  CHECK(bf16_stats("embed.weight").rms == Approx(1.15).epsilon(0.02));
  const auto norm = bf16_stats("layers.0.attn_norm.weight");
  CHECK(norm.lo >= 0.875);
  CHECK(norm.hi <= 1.1171875);
  CHECK(norm.mean == Approx(0.98).epsilon(0.02));
  CHECK(bf16_stats("layers.0.mlp1.bias").rms == Approx(1.15 / 32).epsilon(0.05));
  CHECK(bf16_stats("layers.0.sinks").rms < 0.6);

  // MXFP4: scale bytes 119..121 for fan-in 2880, every code used, 6.0 rare, dequantised rms
  // ~0.9/sqrt(fan-in).
  const auto blocks = fill_all(c, 3, spec_named(specs, "layers.0.mlp1.blocks"));
  const auto scales = fill_all(c, 3, spec_named(specs, "layers.0.mlp1.scales"));
  std::array<size_t, 16> nib_count{};
  std::array<size_t, 256> scale_count{};
  for (auto s : scales) ++scale_count[static_cast<uint8_t>(s)];
  CHECK(scale_count[119] + scale_count[120] + scale_count[121] == scales.size());
  CHECK(scale_count[120] == Approx(scales.size() / 2.0).epsilon(0.02));
  double sq = 0;
  const int row_blocks = c.hidden / 32;
  const size_t rows = scales.size() / static_cast<size_t>(row_blocks);
  for (size_t r = 0; r < rows; ++r) {
    const auto* rb = reinterpret_cast<const uint8_t*>(blocks.data()) + r * row_blocks * 16;
    const auto* rs = reinterpret_cast<const uint8_t*>(scales.data()) + r * row_blocks;
    for (int k = 0; k < c.hidden; ++k) {
      const double v = gptoss::mxfp4_element(rb, rs, k);
      sq += v * v;
    }
    for (int j = 0; j < row_blocks * 16; ++j) {
      ++nib_count[rb[j] & 15];
      ++nib_count[rb[j] >> 4];
    }
  }
  const double rms = std::sqrt(sq / (static_cast<double>(rows) * c.hidden));
  CHECK(rms > 0.8 * inv_sqrt_h);
  CHECK(rms < 1.0 * inv_sqrt_h);
  const double total = static_cast<double>(blocks.size()) * 2;
  for (int n = 0; n < 16; ++n) CHECK(nib_count[n] > 0);
  CHECK((nib_count[7] + nib_count[15]) / total == Approx(1.0 / 64).epsilon(0.05));
  CHECK(nib_count[7] == Approx(nib_count[15]).epsilon(0.05));  // symmetric signs
}

TEST_CASE("synth: written checkpoints read back equal to synth_fill", "[synth]") {
  const auto c = gptoss::conv::synth_config("tiny", 3, 4, 300);
  const uint64_t seed = 77;
  TempDir dir;
  gptoss::conv::SynthWriteOptions opt;
  opt.shard_bytes = 6u << 20;  // several shards; layers cut across them
  opt.threads = 2;
  opt.layout = CheckpointLayout::kHF;
  const auto hf_result = gptoss::conv::write_synth_checkpoint(dir.path, c, seed, opt);
  opt.layout = CheckpointLayout::kOriginal;
  opt.shard_bytes = 20u << 20;
  const auto orig_result = gptoss::conv::write_synth_checkpoint(dir.path, c, seed, opt);
  CHECK(hf_result.num_shards > 2);
  CHECK(orig_result.num_shards > 1);
  CHECK(hf_result.tensor_bytes == orig_result.tensor_bytes);

  const auto hf = gptoss::conv::Checkpoint::open(dir.path);
  const auto orig = gptoss::conv::Checkpoint::open(dir.path, /*prefer_original=*/true);
  REQUIRE(hf.layout() == CheckpointLayout::kHF);
  REQUIRE(orig.layout() == CheckpointLayout::kOriginal);
  CHECK(hf.config() == c);
  CHECK(orig.config() == c);
  for (const auto& t : gptoss::canonical_tensors(c)) {
    const auto want = fill_all(c, seed, t);
    for (const auto* ck : {&hf, &orig}) {
      std::vector<std::byte> got;
      for (const auto& piece : ck->canonical_pieces(t))
        got.insert(got.end(), piece.begin(), piece.end());
      INFO(t.name << (ck == &hf ? " (HF)" : " (original)"));
      CHECK(got == want);
    }
  }
}

TEST_CASE("synth: pinned hashes of the written files", "[synth]") {
  const auto c = gptoss::conv::synth_config("tiny", 2, 4, 1000);
  TempDir dir;
  gptoss::conv::SynthWriteOptions opt;
  opt.shard_bytes = 10u << 20;  // < the expert tensors: one shard per big tensor
  gptoss::conv::write_synth_checkpoint(dir.path, c, /*seed=*/1, opt);
  opt.layout = CheckpointLayout::kOriginal;
  gptoss::conv::write_synth_checkpoint(dir.path, c, /*seed=*/1, opt);
  std::vector<std::pair<std::string, uint64_t>> got;
  for (const auto& e : fs::recursive_directory_iterator(dir.path)) {
    if (e.is_regular_file()) {
      got.emplace_back(fs::relative(e.path(), dir.path).string(), file_hash(e.path()));
    }
  }
  std::sort(got.begin(), got.end());
  std::string listing;
  for (const auto& [name, h] : got) listing += fmt::format("{} {:016x}\n", name, h);
  const std::string pinned =
      "config.json c7f36c8ed3d2a42c\n"
      "generation_config.json fe7ae8b57061f409\n"
      "model-00000-of-00016.safetensors 4f4634f93ced0cca\n"
      "model-00001-of-00016.safetensors ae8c745e1bc37cc3\n"
      "model-00002-of-00016.safetensors 8b886780c4e7511c\n"
      "model-00003-of-00016.safetensors 7f9261c75ecd919a\n"
      "model-00004-of-00016.safetensors ee4536de148921e4\n"
      "model-00005-of-00016.safetensors 46de10e8dce14a84\n"
      "model-00006-of-00016.safetensors 82cd675d5e7c8d7a\n"
      "model-00007-of-00016.safetensors a5346efe01995f8c\n"
      "model-00008-of-00016.safetensors 8231e6caee9e3211\n"
      "model-00009-of-00016.safetensors 66d2b8a2c907ff4a\n"
      "model-00010-of-00016.safetensors a98940dd9e47f30f\n"
      "model-00011-of-00016.safetensors 7ff7fff091cbce97\n"
      "model-00012-of-00016.safetensors a838d88f402388cc\n"
      "model-00013-of-00016.safetensors 4dd5988202bb27f1\n"
      "model-00014-of-00016.safetensors d14d3833f8457e9e\n"
      "model-00015-of-00016.safetensors 6d1044874afc37e9\n"
      "model-00016-of-00016.safetensors a063e8a9c90d3a39\n"
      "model.safetensors.index.json 584bd28f14b781e9\n"
      "original/config.json 171eb645142fd7f2\n"
      "original/dtypes.json 8dbd29df57b9f7a9\n"
      "original/model-00000-of-00016.safetensors 6294343dc47a7c87\n"
      "original/model-00001-of-00016.safetensors 296a8680d61c5aaf\n"
      "original/model-00002-of-00016.safetensors aa6a26a5c628bdb0\n"
      "original/model-00003-of-00016.safetensors 67af1127137c7d1a\n"
      "original/model-00004-of-00016.safetensors c295007c718b856e\n"
      "original/model-00005-of-00016.safetensors fea65bf6040bc741\n"
      "original/model-00006-of-00016.safetensors 0adaf24fc77bdf8b\n"
      "original/model-00007-of-00016.safetensors e0c9dd329a775b23\n"
      "original/model-00008-of-00016.safetensors 03185ba41ce4672a\n"
      "original/model-00009-of-00016.safetensors 245daec47649270e\n"
      "original/model-00010-of-00016.safetensors 35bfdbbe5596a456\n"
      "original/model-00011-of-00016.safetensors 2eafd24ecbe9c705\n"
      "original/model-00012-of-00016.safetensors ab7bc60ddd606f72\n"
      "original/model-00013-of-00016.safetensors a6e50a94d6850530\n"
      "original/model-00014-of-00016.safetensors 2581ea8bbec43de7\n"
      "original/model-00015-of-00016.safetensors 42311051a651e4b8\n"
      "original/model-00016-of-00016.safetensors 6c82fd0286959529\n"
      "original/model.safetensors.index.json f1ad49a560888889\n";
  CHECK(listing == pinned);
}

TEST_CASE("synth: the 120b plan matches the hub totals (nothing written)", "[synth]") {
  const auto c = ModelConfig::preset("120b");
  const auto plan = gptoss::conv::synth_shard_plan(c, CheckpointLayout::kHF, 4'800'000'000ull);
  uint64_t total = 0;
  size_t tensors = 0;
  for (size_t k = 0; k < plan.size(); ++k) {
    CHECK(plan[k].tensor_bytes <= 4'800'000'000ull);
    CHECK(plan[k].file == fmt::format("model-{:05d}-of-{:05d}.safetensors", k, plan.size() - 1));
    total += plan[k].tensor_bytes;
    tensors += plan[k].tensors.size();
  }
  CHECK(total == 65'248'815'744ull);  // FACTS.md 2.1 total_size
  CHECK(tensors == 687);              // 19 per layer + 3
  CHECK(plan.size() >= 14);
  // The end of the largest tensors generates (64-bit offsets everywhere).
  const auto specs = gptoss::canonical_tensors(c);
  for (const auto& name : {"layers.35.mlp1.blocks", "embed.weight", "lm_head.weight"}) {
    const auto& t = spec_named(specs, name);
    std::vector<std::byte> tail(4096);
    synth_fill(c, 1, t, t.num_bytes() - tail.size(), tail);
    CHECK(std::any_of(tail.begin(), tail.end(), [](std::byte b) { return b != std::byte{0}; }));
  }
  const auto plan20 = gptoss::conv::synth_shard_plan(ModelConfig::preset("20b"),
                                                     CheckpointLayout::kHF, 4'800'000'000ull);
  CHECK(plan20.size() == 3);  // as on the hub: model-00000..00002-of-00002
}
