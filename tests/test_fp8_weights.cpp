// test_fp8_weights.cpp — FP8 attention and LM-head weights (E4M3 + one FP32 scale per row):
// the shared encoder against the host's exhaustive-search rounding, the row quantizer's
// contract, synth + convert --attn fp8 --lm-head fp8 against the in-memory --synthetic model
// (byte for byte), the `info` line, and the CPU reference's FP8 GEMVs (exact recomputation of
// the v rows and the logits, and closeness to the BF16 path).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "converter/convert.h"
#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/fp8_weights.h"
#include "host/numeric.h"
#include "host/reference/forward.h"
#include "host/reference/memory_model.h"
#include "model/fp8_rows.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using gptoss::DType;
using gptoss::ModelConfig;
using gptoss::TensorSpec;
using gptoss::WeightFormats;
using gptoss::bf16_bits;
namespace ar = gptoss::archive;
namespace ref = gptoss::ref;

namespace {

WeightFormats fp8_formats(bool attn, bool lm_head) {
  WeightFormats f;
  if (attn) f.attn = ar::WeightFormat::kFP8;
  if (lm_head) f.lm_head = ar::WeightFormat::kFP8;
  return f;
}

uint64_t fresh_seed() {
  const uint64_t s = std::random_device{}();
  UNSCOPED_INFO("random seed " << s);
  return s;
}

}  // namespace

TEST_CASE("fp8 rows: the shared E4M3 encoder rounds like the exhaustive search", "[fp8w]") {
  // Every code's value, the midpoints between neighbours (ties to even), just off them, the
  // saturation range, and fresh random floats over the whole exponent range.
  std::vector<float> xs = {0.0f, -0.0f, 448.0f, 449.0f, 464.0f, 480.0f, 1e30f, -1e30f,
                           INFINITY, -INFINITY, 0x1p-10f, 0x1p-11f, 0x1.8p-10f, 1e-45f};
  for (int c = 0; c < 0x7f; ++c) {
    const float v = gptoss::fp8_e4m3_to_float(uint8_t(c));
    const float next = gptoss::fp8_e4m3_to_float(uint8_t(c + 1 == 0x7f ? c : c + 1));
    const float mid = 0.5f * (v + next);
    for (float x : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) {
      xs.push_back(x);
      xs.push_back(-x);
    }
  }
  std::mt19937_64 rng(fresh_seed());
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> ex(-20, 10);
  for (int i = 0; i < 200000; ++i) xs.push_back(std::ldexp(mant(rng), ex(rng)) * (i & 1 ? -1 : 1));
  size_t mismatches = 0;
  for (float x : xs) {
    const uint8_t want = gptoss::float_to_fp8_e4m3(x);
    const uint8_t got = gptoss::fp8::e4m3_from_float(x);
    if (want != got && mismatches++ < 5) {
      FAIL_CHECK("x = " << x << ": encoder " << int(got) << ", exhaustive search " << int(want));
    }
  }
  CHECK(mismatches == 0);
  // The decoder is exact for every finite code.
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) {
      CHECK(std::isnan(gptoss::fp8::e4m3_to_float(uint8_t(c))));
      continue;
    }
    CHECK(gptoss::fp8::e4m3_to_float(uint8_t(c)) == gptoss::fp8_e4m3_to_float(uint8_t(c)));
  }
}

TEST_CASE("fp8 rows: amax / 448 scales, saturation, no NaN, bounded error", "[fp8w]") {
  std::mt19937_64 rng(fresh_seed());
  const int64_t rows = 37, cols = 96;
  std::vector<bf16_bits> w(size_t(rows * cols));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float mag = std::ldexp(1.0f, int(r % 30) - 20);  // rows of very different magnitude
    for (int64_t k = 0; k < cols; ++k) w[size_t(r * cols + k)] = gptoss::float_to_bf16(mag * normal(rng));
  }
  for (int64_t k = 0; k < cols; ++k) w[size_t(5 * cols + k)] = 0;  // an all-zero row
  w[size_t(7 * cols + 3)] = gptoss::float_to_bf16(-3e38f);         // a huge value
  std::vector<uint8_t> codes(w.size());
  std::vector<float> scales(static_cast<size_t>(rows));
  gptoss::quantize_rows_fp8(w.data(), rows, cols, codes.data(), scales.data());
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    for (int64_t k = 0; k < cols; ++k) amax = std::max(amax, std::fabs(gptoss::bf16_to_float(w[size_t(r * cols + k)])));
    CHECK(scales[size_t(r)] == amax / 448.0f);
    bool has_max = false;
    for (int64_t k = 0; k < cols; ++k) {
      const uint8_t c = codes[size_t(r * cols + k)];
      REQUIRE((c & 0x7f) != 0x7f);  // never NaN
      const float x = gptoss::bf16_to_float(w[size_t(r * cols + k)]);
      const float deq = gptoss::fp8_e4m3_to_float(c) * scales[size_t(r)];
      has_max |= (c & 0x7f) == 0x7e;
      // Half an E4M3 ulp relative (2^-4) for normals; 2^-10 * scale absolute below 2^-6 * scale.
      CHECK(std::fabs(deq - x) <= std::max(std::fabs(x) * 0.0625f, scales[size_t(r)] * 0x1p-10f) * 1.0001f);
    }
    CHECK(has_max == (amax > 0));  // the largest element maps to +-448
  }
  CHECK(scales[5] == 0.0f);
  for (int64_t k = 0; k < cols; ++k) CHECK(codes[size_t(5 * cols + k)] == 0);
  CHECK(codes[size_t(7 * cols + 3)] == 0xfe);  // -448
}

TEST_CASE("fp8 rows: synth + convert --attn fp8 --lm-head fp8 equals the --synthetic model",
          "[fp8w]") {
  const ModelConfig c = gptoss::conv::synth_config("tiny", 2, 4, 300);
  const uint64_t seed = 5;
  gptoss::test::TempDir dir;
  gptoss::conv::SynthWriteOptions so;
  so.threads = 2;
  gptoss::conv::write_synth_checkpoint(dir.path / "ckpt", c, seed, so);
  for (const WeightFormats f : {fp8_formats(true, true), fp8_formats(true, false), fp8_formats(false, true)}) {
    const fs::path out = dir.path / "m.gptoss";
    gptoss::conv::ConvertOptions co;
    co.checkpoint = dir.path / "ckpt";
    co.output = out;
    co.formats = f;
    co.no_tokenizer = true;
    co.write.force = true;
    co.write.handle_signals = false;
    gptoss::conv::convert_checkpoint(co);
    const gptoss::MappedArchive a = gptoss::MappedArchive::open(out);
    CHECK(a.formats() == f);
    CHECK(a.verify().ok());
    // The CPU --synthetic model (generate/bench): synth_fill + the same quantizer.
    ref::MemoryModel m(
        c, [&](const TensorSpec& s, std::span<std::byte> o) { gptoss::conv::synth_fill(c, seed, s, 0, o); },
        f);
    size_t fp8_tensors = 0;
    for (const TensorSpec& s : gptoss::archive_tensors(c, f)) {
      const auto got = a.tensor(s.name);
      const auto want = m.tensor(s.name);
      INFO(s.name);
      REQUIRE(got.size() == want.size());
      CHECK(std::memcmp(got.data(), want.data(), got.size()) == 0);
      fp8_tensors += s.dtype == DType::kF8E4M3;
    }
    CHECK(fp8_tensors == size_t(f.attn == ar::WeightFormat::kFP8 ? 2 * c.num_layers : 0) +
                             (f.lm_head == ar::WeightFormat::kFP8 ? 1 : 0));
    // The FP8 LM head holds exactly the quantized synth_fill rows.
    if (f.lm_head == ar::WeightFormat::kFP8) {
      const TensorSpec lm{"lm_head.weight", DType::kBF16, {c.vocab_size, c.hidden}};
      std::vector<bf16_bits> bf(lm.num_elements());
      gptoss::conv::synth_fill(c, seed, lm, 0, std::as_writable_bytes(std::span(bf)));
      std::vector<uint8_t> codes(bf.size());
      std::vector<float> scales(size_t(c.vocab_size));
      gptoss::quantize_rows_fp8(bf.data(), c.vocab_size, c.hidden, codes.data(), scales.data());
      CHECK(std::memcmp(a.tensor("lm_head.weight").data(), codes.data(), codes.size()) == 0);
      CHECK(std::memcmp(a.tensor("lm_head.weight_scale").data(), scales.data(), 4 * scales.size()) == 0);
    }
  }
}

TEST_CASE("fp8 rows: the CPU reference's FP8 GEMVs use the codes and row scales", "[fp8w][reference]") {
  ModelConfig c = gptoss::conv::synth_config("tiny", 2, 4, 512);
  c.max_context = 64;
  const uint64_t seed = 11;
  auto fill = [&](const TensorSpec& s, std::span<std::byte> o) { gptoss::conv::synth_fill(c, seed, s, 0, o); };
  ref::MemoryModel bf16_model(c, fill);
  ref::MemoryModel fp8_model(c, fill, fp8_formats(true, true));
  gptoss::DecodeOptions opts;
  opts.max_context = 64;
  opts.num_threads = 2;
  ref::Reference base(bf16_model.weights(), opts);
  ref::Reference fp8(fp8_model.weights(), opts);
  const gptoss::ModelWeights& w = fp8_model.weights();
  REQUIRE(w.lm_head_scale != nullptr);
  REQUIRE(w.layers[0].qkv_scale != nullptr);
  double min_cos = 1.0;
  size_t differing = 0;
  for (int token : {3, 200, 17, 42, 511, 0}) {
    base.step(token);
    fp8.step(token);
    // Logits: exactly scale * dot_e4m3(codes, final t) (the rounding points of model/fp8_rows.h).
    std::vector<float> t(size_t(c.hidden));
    for (int i = 0; i < c.hidden; ++i) t[size_t(i)] = gptoss::bf16_to_float(fp8.final_t()[size_t(i)]);
    const auto* codes = static_cast<const uint8_t*>(w.lm_head);
    for (int v : {0, 1, 255, c.vocab_size - 1}) {
      const float want = w.lm_head_scale[v] * ref::dot_e4m3(codes + size_t(v) * c.hidden, t.data(), c.hidden);
      CHECK(fp8.logits()[size_t(v)] == want);
    }
    // The v rows of layer 1's qkv (not rotated): bf16(scale * dot_e4m3 + bias).
    const ref::LayerBuffers& b = fp8.layer(1);
    std::vector<float> ta(size_t(c.hidden));
    for (int i = 0; i < c.hidden; ++i) ta[size_t(i)] = gptoss::bf16_to_float(b.t_attn[size_t(i)]);
    const gptoss::LayerWeights& L = w.layers[1];
    for (int r = c.q_dim() + c.kv_dim(); r < c.qkv_dim(); r += 37) {
      const float y = L.qkv_scale[r] * ref::dot_e4m3(static_cast<const uint8_t*>(L.qkv_weight) + size_t(r) * c.hidden,
                                                     ta.data(), c.hidden) +
                      gptoss::bf16_to_float(L.qkv_bias[r]);
      CHECK(b.qkv[size_t(r)] == gptoss::float_to_bf16(y));
    }
    // Close to the BF16 path, but not the same numbers.
    double dot = 0, na = 0, nb = 0;
    for (size_t v = 0; v < base.logits().size(); ++v) {
      dot += double(base.logits()[v]) * fp8.logits()[v];
      na += double(base.logits()[v]) * base.logits()[v];
      nb += double(fp8.logits()[v]) * fp8.logits()[v];
      differing += base.logits()[v] != fp8.logits()[v];
    }
    min_cos = std::min(min_cos, dot / std::sqrt(na * nb));
  }
  // E4M3 keeps 3 mantissa bits (relative error up to 1/16 per weight, ~2.6% rms): the logits of
  // a 2-layer model stay well correlated with the BF16 ones.
  CHECK(min_cos > 0.99);
  CHECK(differing > 0);
}

TEST_CASE("fp8 rows: a bad view (scales missing) is refused by the reference", "[fp8w][reference]") {
  const ModelConfig c = gptoss::conv::synth_config("tiny", 1, 4, 64);
  ref::MemoryModel m(c, ref::random_filler(1), fp8_formats(true, false));
  gptoss::ModelWeights w = m.weights();
  w.layers[0].qkv_scale = nullptr;
  CHECK_THROWS_WITH(ref::Reference(w), Catch::Contains("attention scales do not match"));
}
