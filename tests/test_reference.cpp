// test_reference.cpp — unit tests of the CPU reference's building blocks and phases (tag
// [reference]): YaRN RoPE against FACTS.md spot values, the sliding window and sinks, SwiGLU
// clamps, router top-k ties, the FP8 activation rule, AVX2 vs portable dot products, and
// determinism across thread counts. The FP64 model comparison is in test_reference_naive.cpp.
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "host/error.h"
#include "host/reference/forward.h"
#include "host/reference/memory_model.h"
#include "host/reference/ops.h"
#include "megakernel/phases.h"

using namespace gptoss;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

// A small model with the real head_dim and RoPE constants; any ModelConfig must work.
ModelConfig small_config(int num_layers = 2) {
  ModelConfig c = ModelConfig::preset("tiny");
  c.num_layers = num_layers;
  c.num_experts = 8;
  c.vocab_size = 512;
  c.hidden = 256;
  c.intermediate = 128;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.layer_sliding = default_layer_pattern(num_layers);
  c.validate();
  return c;
}

void set_bf16(std::span<std::byte> t, size_t i, float v) {
  reinterpret_cast<bf16_bits*>(t.data())[i] = float_to_bf16(v);
}

}  // namespace

TEST_CASE("the phase list has one name per phase", "[reference]") {
  CHECK(mk::kNumPhases == 6);
  CHECK(mk::phase_name(mk::Phase::kNormQkvRope) == "norm_qkv_rope");
  CHECK(mk::phase_name(mk::Phase::kExpertsDown) == "experts_down");
}

TEST_CASE("YaRN frequencies and concentration match FACTS.md spot values", "[reference]") {
  const ref::YarnRope rope(ModelConfig::preset("20b"));
  REQUIRE(rope.num_pairs() == 32);
  CHECK_THAT(rope.omega(0), WithinRel(1.0, 1e-12));
  CHECK_THAT(rope.omega(1), WithinRel(0.689044, 2e-6));
  CHECK_THAT(rope.omega(8), WithinRel(0.0508133, 2e-6));
  CHECK_THAT(rope.omega(9), WithinRel(0.0317057, 2e-6));
  CHECK_THAT(rope.omega(17), WithinRel(1.29319e-4, 2e-5));
  CHECK_THAT(rope.omega(31), WithinRel(3.02351e-7, 2e-5));
  CHECK_THAT(rope.concentration(), WithinRel(1.3465736, 1e-7));
  // i <= 8 pure extrapolation (theta^-2i/64), i >= 18 pure interpolation (divided by 32).
  CHECK_THAT(rope.omega(8), WithinRel(std::pow(150000.0, -16.0 / 64), 1e-12));
  CHECK_THAT(rope.omega(18), WithinRel(std::pow(150000.0, -36.0 / 64) / 32, 1e-12));
}

TEST_CASE("RoPE rotates half-split pairs (i, i+32) with C on cos and sin", "[reference]") {
  const ref::YarnRope rope(ModelConfig::preset("20b"));
  const int hd = 64, pos = 37;
  std::vector<float> cos(32), sin(32);
  rope.row(pos, cos.data(), sin.data());
  const double C = rope.concentration();
  for (int i : {0, 1, 9, 31}) {
    CHECK(cos[i] == static_cast<float>(C * std::cos(pos * rope.omega(i))));
    CHECK(sin[i] == static_cast<float>(C * std::sin(pos * rope.omega(i))));
    // A unit vector on dim i goes to (C cos, C sin) on dims (i, i+32); on dim i+32 to (-C sin, C cos).
    std::vector<float> e(hd, 0.0f);
    e[i] = 1.0f;
    ref::apply_rope(e.data(), cos.data(), sin.data(), hd);
    for (int d = 0; d < hd; ++d) {
      const float want = d == i ? cos[i] : d == i + 32 ? sin[i] : 0.0f;
      CHECK(e[d] == want);
    }
    std::vector<float> f(hd, 0.0f);
    f[i + 32] = 1.0f;
    ref::apply_rope(f.data(), cos.data(), sin.data(), hd);
    CHECK(f[i] == -sin[i]);
    CHECK(f[i + 32] == cos[i]);
  }
  // Position 0: the identity times C.
  rope.row(0, cos.data(), sin.data());
  for (int i = 0; i < 32; ++i) {
    CHECK(cos[i] == static_cast<float>(C));
    CHECK(sin[i] == 0.0f);
  }
  // q . k depends only on the distance between the positions (times C^2).
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> q(hd), k(hd);
  for (int d = 0; d < hd; ++d) q[d] = u(gen), k[d] = u(gen);
  auto roped_dot = [&](int pq, int pk) {
    std::vector<float> a = q, b = k, c1(32), s1(32), c2(32), s2(32);
    rope.row(pq, c1.data(), s1.data());
    rope.row(pk, c2.data(), s2.data());
    ref::apply_rope(a.data(), c1.data(), s1.data(), hd);
    ref::apply_rope(b.data(), c2.data(), s2.data(), hd);
    double s = 0;
    for (int d = 0; d < hd; ++d) s += double(a[d]) * b[d];
    return s;
  };
  double plain = 0;
  for (int d = 0; d < hd; ++d) plain += double(q[d]) * k[d];
  CHECK_THAT(roped_dot(5, 5), WithinRel(C * C * plain, 1e-5));
  CHECK_THAT(roped_dot(100, 90), WithinRel(roped_dot(1010, 1000), 1e-4));
}

TEST_CASE("SwiGLU clamps the gate above only, the linear half both ways, and adds 1",
          "[reference]") {
  auto want = [](double g, double u) {
    g = std::min(g, 7.0);
    u = std::clamp(u, -7.0, 7.0);
    return g / (1.0 + std::exp(-1.702 * g)) * (u + 1.0);
  };
  for (auto [g, u] : std::vector<std::pair<float, float>>{
           {10, 0}, {-10, 0}, {1, 10}, {1, -10}, {0.5f, 0.25f}, {-3, 2}, {7, 7}, {3, -1}}) {
    CHECK_THAT(ref::swiglu(g, u, 7.0f), WithinAbs(want(g, u), 1e-5 * (1 + std::fabs(want(g, u)))));
  }
  CHECK(ref::swiglu(2.0f, -1.0f, 7.0f) == 0.0f);   // the +1 on the linear half
  CHECK(ref::swiglu(0.0f, 5.0f, 7.0f) == 0.0f);
  CHECK(ref::swiglu(100.0f, 0.0f, 7.0f) == ref::swiglu(7.0f, 0.0f, 7.0f));  // gate clamped at 7
  CHECK(ref::swiglu(-20.0f, 0.0f, 7.0f) < -1e-14f);  // no lower clamp: -20 * sigmoid(-34) != 0
  CHECK(ref::swiglu(1.0f, 50.0f, 7.0f) == ref::swiglu(1.0f, 7.0f, 7.0f));
  CHECK(ref::swiglu(1.0f, -50.0f, 7.0f) == ref::swiglu(1.0f, -7.0f, 7.0f));
}

TEST_CASE("router takes the top-4 raw logits, lowest index on ties, softmax over 4",
          "[reference]") {
  const std::vector<float> logits = {1.0f, 3.0f, 0.5f, 3.0f, 2.0f, 3.0f, -1.0f, 2.0f};
  auto t = ref::router_topk(logits.data(), 8, 4);
  CHECK(t.experts == std::vector<int>{1, 3, 5, 4});  // the three 3s, then the first 2 (index 4)
  CHECK(t.kth_gap == 0.0f);                            // 4th (2.0 at 4) vs 5th (2.0 at 7)
  CHECK(t.top2_gap == 0.0f);
  const double z = 3 * std::exp(0.0) + std::exp(-1.0);
  CHECK_THAT(t.weights[0], WithinRel(1 / z, 1e-6));
  CHECK_THAT(t.weights[3], WithinRel(std::exp(-1.0) / z, 1e-6));
  CHECK_THAT(t.weights[0] + t.weights[1] + t.weights[2] + t.weights[3], WithinAbs(1.0, 1e-6));
  // Not a softmax over all experts first: the weights do not depend on the unchosen logits.
  std::vector<float> other = logits;
  other[6] = 2.5f - 100.0f;
  other[2] = -50.0f;
  CHECK(ref::router_topk(other.data(), 8, 4).weights == t.weights);

  const std::vector<float> spread = {0.0f, 5.0f, 1.0f, 4.0f, 2.0f, 3.5f, -2.0f, 1.5f};
  t = ref::router_topk(spread.data(), 8, 4);
  CHECK(t.experts == std::vector<int>{1, 3, 5, 4});
  CHECK(t.kth_gap == 0.5f);   // 2.0 - 1.5
  CHECK(t.top2_gap == 1.0f);  // 5 - 4
  const std::vector<float> bad = {0.0f, NAN, 1.0f, 2.0f, 3.0f};
  CHECK_THROWS_AS(ref::router_topk(bad.data(), 5, 4), Error);
}

TEST_CASE("FP8 activation quantization follows notes/fp8.md", "[reference]") {
  std::vector<float> x(64, 0.0f);
  std::vector<uint8_t> codes(64, 0xaa), scales(2, 0xaa);
  std::vector<float> deq(64, -1.0f);
  SECTION("amax 0 gives scale byte 0 and zero codes") {
    for (int j = 32; j < 64; ++j) x[j] = round_to_bf16(0.01f * (j - 40));
    ref::quantize_fp8_blocks(codes.data(), scales.data(), deq.data(), x.data(), 64);
    CHECK(scales[0] == 0);
    for (int j = 0; j < 32; ++j) CHECK((codes[j] == 0 && deq[j] == 0.0f));
    CHECK(scales[1] != 0);
  }
  SECTION("exact powers of two and the scale exponent") {
    x[0] = 1.0f;   // amax: ilogb 0 -> e = -8
    x[1] = 0.5f;
    x[2] = -0.25f;
    x[3] = 0x1p-12f;
    ref::quantize_fp8_blocks(codes.data(), scales.data(), deq.data(), x.data(), 64);
    CHECK(scales[0] == 127 - 8);
    CHECK(codes[0] == 0x78);  // 256 = 2^8: exponent field 15, mantissa 0
    CHECK(codes[1] == 0x70);  // 128
    CHECK(codes[2] == 0xe8);  // -64
    for (int j = 0; j < 4; ++j) CHECK(deq[j] == x[j]);
    CHECK(deq[3] == 0x1p-12f);  // 2^-12 * 2^8 = 2^-4: a normal e4m3 value, exact
  }
  SECTION("round to nearest even") {
    x[0] = 1.0f;                  // e = -8
    x[1] = 50.0f / 256.0f;        // 50: halfway between 48 and 52 -> 48 (even mantissa)
    x[2] = 51.25f / 256.0f;       // 51.25 -> 52
    x[3] = 54.0f / 256.0f;        // 54: halfway between 52 and 56 -> 56 (even)
    ref::quantize_fp8_blocks(codes.data(), scales.data(), deq.data(), x.data(), 64);
    CHECK(deq[1] == 48.0f / 256.0f);
    CHECK(deq[2] == 52.0f / 256.0f);
    CHECK(deq[3] == 56.0f / 256.0f);
  }
  SECTION("values above 448 * 2^e saturate") {
    x[0] = 510.0f;  // ilogb 8 -> e = 0; 510 > 448
    x[1] = -480.0f;
    x[2] = 448.0f;
    x[3] = 300.0f;  // 288 or 320 (spacing 32): 300 -> 288
    ref::quantize_fp8_blocks(codes.data(), scales.data(), deq.data(), x.data(), 64);
    CHECK(scales[0] == 127);
    CHECK(codes[0] == 0x7e);
    CHECK(codes[1] == 0xfe);
    CHECK(deq[0] == 448.0f);
    CHECK(deq[1] == -448.0f);
    CHECK(deq[2] == 448.0f);
    CHECK(deq[3] == 288.0f);
  }
  SECTION("the exponent is clamped to [-127, 127]") {
    CHECK(ref::fp8_block_exponent(0x1p-130f) == -127);
    CHECK(ref::fp8_block_exponent(0x1p-119f) == -127);
    CHECK(ref::fp8_block_exponent(0x1p-118f) == -126);
    CHECK(ref::fp8_block_exponent(3.0e38f) == 119);
    x[0] = 0x1p-130f;  // a subnormal amax: scale byte 0 (2^-127), code 2^-3
    ref::quantize_fp8_blocks(codes.data(), scales.data(), deq.data(), x.data(), 64);
    CHECK(scales[0] == 0);
    CHECK(deq[0] == 0x1p-130f);
  }
  SECTION("a block's amax is taken over that block only") {
    for (int j = 0; j < 64; ++j) x[j] = round_to_bf16(0.001f * (j + 1) * (j % 2 ? 1 : -1));
    ref::quantize_fp8_blocks(codes.data(), scales.data(), deq.data(), x.data(), 64);
    CHECK(scales[0] == 127 + std::ilogb(0.032f) - 8);
    CHECK(scales[1] == 127 + std::ilogb(0.064f) - 8);
    for (int j = 0; j < 64; ++j) CHECK(std::fabs(deq[j] - x[j]) <= std::fabs(x[j]) / 16);
  }
}

TEST_CASE("AVX2 and portable dot products agree bit for bit", "[reference]") {
  std::mt19937 gen(11);
  std::uniform_real_distribution<float> u(-2, 2);
  for (int n : {2880, 32, 64, 4096, 16 * 7 + 5, 3}) {
    std::vector<bf16_bits> w(static_cast<size_t>(n));
    std::vector<float> x(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) w[i] = float_to_bf16(u(gen)), x[i] = round_to_bf16(u(gen));
    const float a = ref::dot_bf16(w.data(), x.data(), n);
    const float b = ref::detail::dot_bf16_scalar(w.data(), x.data(), n);
    CHECK(std::memcmp(&a, &b, sizeof a) == 0);
    double exact = 0;
    for (int i = 0; i < n; ++i) exact += double(bf16_to_float(w[i])) * x[i];
    CHECK_THAT(a, WithinAbs(exact, 1e-5 * std::sqrt(double(n)) * 4));
    if (n % 32 != 0) continue;
    std::vector<uint8_t> blocks(static_cast<size_t>(n / 2)), scales(static_cast<size_t>(n / 32));
    for (auto& v : blocks) v = static_cast<uint8_t>(gen());
    for (size_t g = 0; g < scales.size(); ++g) scales[g] = static_cast<uint8_t>(110 + gen() % 30);
    scales[0] = 0;  // 2^-127 (subnormal scale)
    const float c = ref::dot_mxfp4(blocks.data(), scales.data(), x.data(), n);
    const float d = ref::detail::dot_mxfp4_scalar(blocks.data(), scales.data(), x.data(), n);
    CHECK(std::memcmp(&c, &d, sizeof c) == 0);
    double exact4 = 0;
    for (int i = 0; i < n; ++i) exact4 += double(mxfp4_element(blocks.data(), scales.data(), i)) * x[i];
    CHECK_THAT(c, WithinAbs(exact4, 1e-6 * (1 + std::fabs(exact4)) * std::sqrt(double(n))));
  }
}

TEST_CASE("greedy argmax: the lowest index wins ties, NaN never wins", "[reference]") {
  CHECK(ref::greedy_argmax({1.0f, 3.0f, 2.0f, 3.0f}) == 1);
  CHECK(ref::greedy_argmax({NAN, -1.0f, -1.0f}) == 1);
  CHECK(ref::greedy_argmax({-INFINITY, -INFINITY}) == 0);
  CHECK_THROWS_AS(ref::greedy_argmax({NAN, NAN}), Error);
}

namespace {

// Attention phase on crafted inputs: q = 0 makes every logit 0, so a head's output is the mean
// of the visible values (a very negative sink contributes nothing). Value of position j on KV
// head g is (g + 1) * j, so the output reveals both the window and the GQA mapping.
std::vector<float> attention_means(ref::Reference& r, int layer, int pos) {
  const ModelConfig& c = r.config();
  ref::LayerBuffers b;
  b.resize(c);
  for (int j = 0; j <= pos; ++j) {
    std::vector<bf16_bits> k(static_cast<size_t>(c.kv_dim())), v(k.size());
    for (int g = 0; g < c.num_kv_heads; ++g) {
      for (int d = 0; d < c.head_dim; ++d) {
        k[g * c.head_dim + d] = float_to_bf16(0.25f * d - 3.0f);  // irrelevant: q = 0
        v[g * c.head_dim + d] = float_to_bf16(static_cast<float>((g + 1) * j));
      }
    }
    if (j < pos) {
      std::copy(k.begin(), k.end(), r.cache().k(layer, j));
      std::copy(v.begin(), v.end(), r.cache().v(layer, j));
    } else {  // the current position's k, v come from the qkv buffer
      std::copy(k.begin(), k.end(), b.qkv.begin() + c.q_dim());
      std::copy(v.begin(), v.end(), b.qkv.begin() + c.q_dim() + c.kv_dim());
    }
  }
  r.run_phase(mk::Phase::kAttention, layer, pos, b);
  std::vector<float> out(static_cast<size_t>(c.num_heads));
  for (int h = 0; h < c.num_heads; ++h) out[h] = bf16_to_float(b.attn[h * c.head_dim + 5]);
  return out;
}

}  // namespace

TEST_CASE("the sliding window holds 128 keys including the current one", "[reference]") {
  const ModelConfig c = small_config();
  REQUIRE(c.sliding_window == 128);
  ref::MemoryModel m(c, ref::random_filler(3));
  for (int l = 0; l < c.num_layers; ++l) {
    auto sinks = m.tensor(layer_tensor_name(l, tensor_names::kSinks));
    for (int h = 0; h < c.num_heads; ++h) set_bf16(sinks, h, -200.0f);
  }
  ref::Reference r(m.weights(), {gptoss::ExpertMode::kBf16, 2, 256});
  const int group = c.num_heads / c.num_kv_heads;
  for (int pos : {126, 127, 128, 129, 200}) {
    const double full_mean = pos / 2.0;                               // keys 0..pos
    const int first = std::max(0, pos - 127);
    const double window_mean = (first + pos) / 2.0;                   // keys first..pos
    const auto sliding = attention_means(r, /*layer=*/0, pos);
    const auto full = attention_means(r, /*layer=*/1, pos);
    for (int h = 0; h < c.num_heads; ++h) {
      const double g1 = h / group + 1;
      INFO("pos " << pos << " head " << h);
      CHECK_THAT(sliding[h], WithinRel(g1 * window_mean, 4e-3));
      CHECK_THAT(full[h], WithinRel(g1 * full_mean, 4e-3));
    }
  }
  // At 126/127 both see everything; from 128 on the sliding layer has dropped position 0.
  CHECK(attention_means(r, 0, 127)[0] == attention_means(r, 1, 127)[0]);
  CHECK(attention_means(r, 0, 128)[0] > attention_means(r, 1, 128)[0]);
}

TEST_CASE("sinks: a huge sink drives the output to zero, a very negative one is plain softmax",
          "[reference]") {
  const int hd = 64;
  std::vector<bf16_bits> k0(hd), k1(hd), v0(hd), v1(hd);
  std::vector<float> q(hd, 0.0f), out(hd);
  for (int d = 0; d < hd; ++d) {
    k0[d] = float_to_bf16(0.0f);
    k1[d] = float_to_bf16(d == 3 ? 1.0f : 0.0f);
    v0[d] = float_to_bf16(1.0f + d);
    v1[d] = float_to_bf16(-2.0f);
  }
  q[3] = 8.0f;  // logits: 0 and 8 * 0.125 = 1
  const bf16_bits* keys[] = {k0.data(), k1.data()};
  const bf16_bits* vals[] = {v0.data(), v1.data()};
  auto run = [&](float sink) {
    ref::attention_head(out.data(), q.data(), keys, vals, 2, hd, 0.125f, sink);
    return out;
  };
  const double p1 = std::exp(1.0) / (1.0 + std::exp(1.0));
  auto o = run(-1000.0f);
  for (int d = 0; d < hd; ++d) CHECK_THAT(o[d], WithinRel((1 - p1) * (1.0 + d) - 2 * p1, 1e-6));
  o = run(1000.0f);
  for (int d = 0; d < hd; ++d) CHECK(std::fabs(o[d]) < 1e-30f);
  o = run(1.0f);  // the sink is one more logit, not scaled by 0.125: weights e^0, e^1, e^1
  const double z = 1 + 2 * std::exp(1.0);
  for (int d = 0; d < hd; ++d) {
    CHECK_THAT(o[d], WithinRel((1.0 + d) / z - 2 * std::exp(1.0) / z, 1e-6));
  }
}

TEST_CASE("reference results do not depend on the thread count", "[reference]") {
  const ModelConfig c = small_config(3);
  ref::MemoryModel m(c, ref::random_filler(5));
  for (gptoss::ExpertMode mode : {gptoss::ExpertMode::kBf16, gptoss::ExpertMode::kFp8}) {
    std::vector<std::vector<float>> logits;
    std::vector<std::vector<int>> tokens;
    std::vector<std::vector<bf16_bits>> swiglu;
    for (int threads : {1, 2, 3, 8}) {
      ref::Reference r(m.weights(), {mode, threads, 64});
      std::vector<int> toks = {7};
      for (int i = 0; i < 12; ++i) toks.push_back(r.step(toks.back()));
      tokens.push_back(toks);
      logits.push_back(r.logits());
      swiglu.push_back(r.layer(1).swiglu);
    }
    for (size_t i = 1; i < logits.size(); ++i) {
      CHECK(tokens[i] == tokens[0]);
      CHECK(std::memcmp(logits[i].data(), logits[0].data(), logits[0].size() * 4) == 0);
      CHECK(swiglu[i] == swiglu[0]);
    }
  }
}

TEST_CASE("reference rejects bad tokens and positions past its capacity", "[reference]") {
  const ModelConfig c = small_config(1);
  ref::MemoryModel m(c, ref::random_filler(1));
  ref::Reference r(m.weights(), {gptoss::ExpertMode::kBf16, 1, 3});
  CHECK_THROWS_WITH(r.step(c.vocab_size), Catch::Contains("outside the vocabulary"));
  CHECK_THROWS_WITH(r.step(-1), Catch::Contains("outside the vocabulary"));
  r.step(1);
  r.step(2);
  r.step(3);
  CHECK_THROWS_WITH(r.step(4), Catch::Contains("context limit of 3"));
  CHECK_THROWS_AS(gptoss::parse_expert_mode("fp4"), Error);
  CHECK(gptoss::parse_expert_mode("fp8") == gptoss::ExpertMode::kFp8);
}

TEST_CASE("advance() runs a prompt position like step() without the LM head", "[reference]") {
  const ModelConfig c = small_config(2);
  ref::MemoryModel m(c, ref::random_filler(4));
  const std::vector<int> prompt = {7, 300, 42, 511, 0, 99};
  ref::Reference a(m.weights(), {gptoss::ExpertMode::kBf16, 2, 32});
  ref::Reference b(m.weights(), {gptoss::ExpertMode::kBf16, 2, 32});
  int next_a = -1;
  for (int t : prompt) next_a = a.step(t);
  for (size_t i = 0; i + 1 < prompt.size(); ++i) b.advance(prompt[i]);
  CHECK(b.position() == int(prompt.size()) - 1);
  int next_b = b.step(prompt.back());
  CHECK(next_b == next_a);
  CHECK(std::memcmp(a.logits().data(), b.logits().data(), a.logits().size() * 4) == 0);
  // The caches agree too: the next generated steps are bit-identical.
  for (int i = 0; i < 4; ++i) {
    next_a = a.step(next_a);
    next_b = b.step(next_b);
    REQUIRE(next_a == next_b);
    REQUIRE(std::memcmp(a.logits().data(), b.logits().data(), a.logits().size() * 4) == 0);
  }
  CHECK_THROWS_WITH(b.advance(c.vocab_size), Catch::Contains("outside the vocabulary"));
}

TEST_CASE("fp8 expert mode changes only the expert input", "[reference]") {
  const ModelConfig c = small_config(1);
  ref::MemoryModel m(c, ref::random_filler(9));
  ref::Reference a(m.weights(), {gptoss::ExpertMode::kBf16, 2, 16});
  ref::Reference b(m.weights(), {gptoss::ExpertMode::kFp8, 2, 16});
  a.step(5);
  b.step(5);
  const auto& la = a.layer(0);
  const auto& lb = b.layer(0);
  CHECK(la.t_mlp == lb.t_mlp);
  CHECK(la.router_logits == lb.router_logits);
  CHECK(la.experts == lb.experts);
  CHECK(la.expert_in != lb.expert_in);
  for (size_t i = 0; i < lb.expert_in.size(); ++i) {
    const float t = bf16_to_float(lb.t_mlp[i]);
    const float s = std::ldexp(1.0f, lb.t_fp8_scales[i / 32] - 127);
    REQUIRE(lb.expert_in[i] == fp8_e4m3_to_float(lb.t_fp8[i]) * s);
    // E4M3 keeps 3 mantissa bits (error <= |t|/16, subnormals 2^-10 * s); values above 448 * s
    // (amax * 2^-e lies in [256, 512)) saturate to 448 * s.
    const float allowed = std::max(std::fabs(t) / 16 + s * 0x1p-10f, std::fabs(t) - 448.0f * s);
    CHECK(std::fabs(lb.expert_in[i] - t) <= allowed);
  }
}
