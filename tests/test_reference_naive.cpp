// test_reference_naive.cpp — the CPU reference against an independent, naive FP64 model written
// from FACTS.md section 3 (tag [reference]). With the same BF16 rounding points the two must agree
// to a few BF16 ulps everywhere (FP32 vs FP64 accumulation is the only difference); without them
// the reference must stay within BF16-rounding distance of the exact model.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "host/numeric.h"
#include "host/reference/forward.h"
#include "host/reference/memory_model.h"
#include "tests/reference/naive_model.h"

using namespace gptoss;
using gptoss::naive::NaiveLayer;
using gptoss::naive::NaiveModel;

namespace {

// ---- comparison helpers ------------------------------------------------------------------------

// The chosen set matters, not the rank order: two nearly equal logits inside the top-k may swap
// ranks without changing the layer's output (each expert keeps its own weight).
bool same_experts(std::vector<int> a, std::vector<int> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}

double rms(const std::vector<double>& b) {
  double s = 0;
  for (double v : b) s += v * v;
  return std::sqrt(s / double(std::max<size_t>(b.size(), 1)));
}

double as_double(bf16_bits v) { return bf16_to_float(v); }
double as_double(float v) { return v; }

// One BF16 ulp of |v| (the spacing of BF16 values at v's binade).
double bf16_ulp(double v) { return v == 0 ? 0 : std::ldexp(1.0, std::ilogb(v) - 7); }

struct BufferCheck {
  const char* name;
  int violations = 0;   // elements outside the tolerance
  int flips = 0;        // BF16 elements that differ at all (rounding flips)
  double worst = 0;     // max |a - b| / rms(b)
  std::string first;    // where the first violation was
};

// BF16 buffers: the two models may differ by one BF16 rounding flip per element (an FP32 vs FP64
// sum on the two sides of a rounding boundary) plus FP32 noise on elements near zero, which is
// below 1e-5 of the buffer's rms for sums of a few thousand terms.
template <typename A>
void check_bf16(BufferCheck& c, const std::vector<A>& a, const std::vector<double>& b, int pos,
                int layer) {
  const double scale = rms(b);
  for (size_t i = 0; i < b.size(); ++i) {
    const double av = as_double(a[i]), d = std::fabs(av - b[i]);
    c.flips += av != b[i];
    c.worst = std::max(c.worst, d / std::max(scale, 1e-30));
    if (d > bf16_ulp(std::max(std::fabs(av), std::fabs(b[i]))) + 1e-5 * scale) {
      if (c.violations++ == 0) {
        c.first = fmt::format("pos {} layer {} [{}]: {} vs {}", pos, layer, i, av, b[i]);
      }
    }
  }
}

// FP32 buffers (residual, router logits, logits): FP32 accumulation noise only, 1e-5 of the
// buffer's rms plus 1e-5 relative.
template <typename A>
void check_f32(BufferCheck& c, const std::vector<A>& a, const std::vector<double>& b, int pos,
               int layer) {
  const double scale = rms(b);
  for (size_t i = 0; i < b.size(); ++i) {
    const double av = as_double(a[i]), d = std::fabs(av - b[i]);
    c.worst = std::max(c.worst, d / std::max(scale, 1e-30));
    if (d > 1e-5 * (scale + std::fabs(b[i]))) {
      if (c.violations++ == 0) {
        c.first = fmt::format("pos {} layer {} [{}]: {} vs {}", pos, layer, i, av, b[i]);
      }
    }
  }
}

ModelConfig config_with(int hidden, int heads, int kv_heads, int experts, int intermediate,
                        int layers, int window, int vocab) {
  ModelConfig c = ModelConfig::preset("tiny");
  c.hidden = hidden;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.num_experts = experts;
  c.intermediate = intermediate;
  c.num_layers = layers;
  c.sliding_window = window;
  c.vocab_size = vocab;
  c.layer_sliding = default_layer_pattern(layers);
  c.validate();
  return c;
}

std::vector<int> seeded_tokens(int n, int vocab, uint64_t seed) {
  std::vector<int> t(static_cast<size_t>(n));
  uint64_t s = seed;
  for (int& v : t) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<int>((s >> 33) % static_cast<uint64_t>(vocab));
  }
  return t;
}

// Teacher-forced comparison of every buffer at every position and layer (see NaiveModel::layer):
// each buffer's difference is that of one phase, so the tolerances are per element.
void compare_teacher_forced(const ModelWeights& w, const std::vector<int>& tokens, bool fp8) {
  const ModelConfig& c = w.config;
  ref::Reference reference(w, {fp8 ? gptoss::ExpertMode::kFp8 : gptoss::ExpertMode::kBf16, 2,
                               static_cast<int>(tokens.size())});
  NaiveModel naive(w, /*round_bf16=*/true, fp8);
  BufferCheck t_attn{"t_attn"}, qkv{"qkv"}, attn{"attn"}, x_attn{"x_attn"}, t_mlp{"t_mlp"},
      router{"router_logits"}, swiglu{"swiglu"}, x_out{"x_out"}, final_t{"final_t"},
      logits{"logits"};
  int expert_mismatch = 0, near_ties = 0, expert_in_diffs = 0;
  for (size_t p = 0; p < tokens.size(); ++p) {
    const int pos = static_cast<int>(p);
    reference.step(tokens[p]);
    const auto naive_logits = naive.step(tokens[p], &reference);
    for (int l = 0; l < c.num_layers; ++l) {
      const auto& a = reference.layer(l);
      const auto& b = naive.layer_out(l);
      check_bf16(t_attn, a.t_attn, b.t_attn, pos, l);
      check_bf16(qkv, a.qkv, b.qkv, pos, l);
      check_bf16(attn, a.attn, b.attn, pos, l);
      check_f32(x_attn, a.x_attn, b.x_attn, pos, l);
      check_bf16(t_mlp, a.t_mlp, b.t_mlp, pos, l);
      check_f32(router, a.router_logits, b.router_logits, pos, l);
      for (size_t i = 0; i < b.expert_in.size(); ++i) expert_in_diffs += a.expert_in[i] != b.expert_in[i];
      if (!same_experts(a.experts, b.experts)) {
        // Only a near-tie may flip the choice: FP32 router logits are within ~1e-5 of FP64.
        if (b.kth_gap < 1e-4) ++near_ties;
        else ++expert_mismatch;
      }
      check_bf16(swiglu, a.swiglu, b.swiglu, pos, l);
      check_f32(x_out, a.x_out, b.x_out, pos, l);
    }
    check_bf16(final_t, reference.final_t(), naive.final_t(), pos, -1);
    check_f32(logits, reference.logits(), naive_logits, pos, -1);
  }
  CHECK(expert_mismatch == 0);
  CHECK(expert_in_diffs == 0);  // the FP8 rule is deterministic: identical input, identical codes
  UNSCOPED_INFO("router near-ties (choice may differ): " << near_ties);
  for (const BufferCheck* bc : {&t_attn, &qkv, &attn, &x_attn, &t_mlp, &router, &swiglu, &x_out,
                                &final_t, &logits}) {
    INFO(fmt::format("{}: {} violations, {} rounding flips, worst |diff|/rms {:.2e} {}", bc->name,
                     bc->violations, bc->flips, bc->worst, bc->first));
    CHECK(bc->violations == 0);
  }
}

// Cosine similarity and max |diff| / rms of two logit vectors.
std::pair<double, double> logit_agreement(const std::vector<float>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0, worst = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    ab += a[i] * b[i];
    aa += double(a[i]) * a[i];
    bb += b[i] * b[i];
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  }
  return {ab / std::sqrt(aa * bb), worst / rms(b)};
}

}  // namespace

TEST_CASE("reference matches a naive FP64 model phase by phase (same rounding points)",
          "[reference]") {
  // Window 8 so that 24 positions cross it several times on the sliding layers.
  const ModelConfig c = config_with(256, 8, 2, 8, 128, 3, 8, 512);
  ref::MemoryModel m(c, ref::random_filler(21));
  for (bool fp8 : {false, true}) {
    INFO((fp8 ? "fp8" : "bf16") << " experts");
    compare_teacher_forced(m.weights(), seeded_tokens(24, c.vocab_size, 5), fp8);
  }
}

TEST_CASE("reference matches the FP64 model phase by phase across the real 128-key window",
          "[reference]") {
  const ModelConfig c = config_with(64, 4, 2, 8, 64, 2, 128, 128);
  ref::MemoryModel m(c, ref::random_filler(23));
  compare_teacher_forced(m.weights(), seeded_tokens(140, c.vocab_size, 7), false);
}

TEST_CASE("reference matches the FP64 model phase by phase at the real widths", "[reference]") {
  // One sliding and one full layer of the real shape (hidden 2880, 64 q / 8 kv heads,
  // intermediate 2880) with 8 experts and a small vocabulary.
  const ModelConfig c = config_with(2880, 64, 8, 8, 2880, 2, 128, 256);
  ref::MemoryModel m(c, ref::random_filler(22));
  compare_teacher_forced(m.weights(), seeded_tokens(3, c.vocab_size, 6), false);
}

TEST_CASE("free-running, the reference stays within BF16 rounding of the exact FP64 model",
          "[reference]") {
  // No teacher forcing and no rounding in the naive model: the reference's BF16 storage is then
  // the only difference. Each stored value carries <= 2^-9 relative error, five rounding points
  // per layer, so the logits keep a cosine above 0.999 (measured: see the message) while a wrong
  // mask, rotation or expert choice drops it to ~0.5-0.9.
  const ModelConfig c = config_with(256, 8, 2, 8, 128, 2, 8, 512);
  ref::MemoryModel m(c, ref::random_filler(24));
  const auto tokens = seeded_tokens(20, c.vocab_size, 8);
  ref::Reference reference(m.weights(), {gptoss::ExpertMode::kBf16, 2, 64});
  NaiveModel naive(m.weights(), /*round_bf16=*/false, /*fp8=*/false);
  double worst_cos = 1, worst_err = 0;
  int compared = 0;
  for (size_t p = 0; p < tokens.size(); ++p) {
    reference.step(tokens[p]);
    const auto logits = naive.step(tokens[p]);
    bool diverged = false;
    for (int l = 0; l < c.num_layers; ++l) {
      if (!same_experts(reference.layer(l).experts, naive.layer_out(l).experts)) {
        // A different expert is a legitimate divergence only at a router near-tie.
        INFO("position " << p << " layer " << l);
        CHECK(naive.layer_out(l).kth_gap < 0.05);
        diverged = true;
      }
    }
    if (diverged) break;
    const auto [cos, err] = logit_agreement(reference.logits(), logits);
    worst_cos = std::min(worst_cos, cos);
    worst_err = std::max(worst_err, err);
    ++compared;
  }
  INFO("positions " << compared << ", worst cosine " << worst_cos << ", worst max|diff|/rms "
                    << worst_err);
  CHECK(compared >= 10);
  CHECK(worst_cos > 0.999);
  CHECK(worst_err < 0.1);
}
