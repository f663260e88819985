// test_opref.cpp — CPU checks of the device-op oracles (tests/reference/op_ref.h) and of the host
// YaRN tables (model/rope_yarn.h): values worked out by hand or quoted in FACTS.md, so that the
// GPU tests compare against references that are themselves checked.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "host/numeric.h"
#include "model/rope_yarn.h"
#include "tests/reference/op_ref.h"

using namespace gptoss;

TEST_CASE("YaRN frequencies and concentration match FACTS.md", "[opref][rope]") {
  const YarnParams p;  // gpt-oss defaults
  CHECK(yarn_correction_dim(p, p.beta_fast) == Approx(8.092779).epsilon(1e-6));
  CHECK(yarn_correction_dim(p, p.beta_slow) == Approx(17.398025).epsilon(1e-6));
  CHECK(yarn_concentration(p) == Approx(1.3465736).epsilon(1e-7));
  const auto w = yarn_inv_freq(p);
  REQUIRE(w.size() == 32);
  CHECK(w[0] == Approx(1.0).epsilon(1e-12));
  CHECK(w[1] == Approx(0.689044).epsilon(2e-6));
  CHECK(w[8] == Approx(0.0508133).epsilon(2e-6));
  CHECK(w[9] == Approx(0.0317057).epsilon(2e-6));
  CHECK(w[17] == Approx(1.29319e-4).epsilon(2e-5));
  CHECK(w[31] == Approx(3.02351e-7).epsilon(2e-5));
  const auto t = yarn_cos_sin_table(p, 3);
  CHECK(t[(2 * 32 + 1) * 2] == Approx(1.3465736 * std::cos(2 * w[1])).epsilon(1e-6));
  CHECK(t[(2 * 32 + 1) * 2 + 1] == Approx(1.3465736 * std::sin(2 * w[1])).epsilon(1e-6));
}

TEST_CASE("FP8 block quantization rule (notes/fp8.md) by hand", "[opref][fp8]") {
  std::vector<float> x(64, 0.0f);
  x[0] = 1.0f;      // amax 1: e = 0 - 8, scale byte 119, 1 * 2^8 = 256 -> E4M3 0x78
  x[1] = -0.5f;     // 128 -> 0xf0
  x[2] = 1.0f / 1024;  // 0.25 -> 2^-2: exponent 5, code 0x28
  x[32] = 1.9375f;  // amax in [1, 2): 1.9375 * 256 = 496 > 448 saturates to 0x7e
  x[33] = -0.0f;
  std::vector<uint8_t> codes(64), scales(2);
  opref::quantize_fp8_blocks(x.data(), 64, codes.data(), scales.data());
  CHECK(int(scales[0]) == 119);
  CHECK(int(codes[0]) == 0x78);
  CHECK(int(codes[1]) == 0xf0);
  CHECK(int(codes[2]) == 0x28);
  CHECK(int(codes[3]) == 0x00);
  CHECK(int(scales[1]) == 119);
  CHECK(int(codes[32]) == 0x7e);
  CHECK(int(codes[33]) == 0x80);
  const auto back = opref::dequantize_fp8_blocks(codes.data(), scales.data(), 64);
  CHECK(back[0] == 1.0f);
  CHECK(back[32] == 448.0f / 256);
  std::vector<float> zeros(32, 0.0f);
  opref::quantize_fp8_blocks(zeros.data(), 32, codes.data(), scales.data());
  CHECK(int(scales[0]) == 0);
  CHECK(int(codes[0]) == 0);
}

TEST_CASE("MXFP4 reference decode agrees with host/numeric.h", "[opref][mxfp4]") {
  uint8_t blocks[16], scales[1];
  for (int s = 1; s < 253; ++s) {
    for (int byte = 0; byte < 256; ++byte) {
      for (auto& b : blocks) b = uint8_t(byte);
      scales[0] = uint8_t(s);
      for (int k : {0, 1, 30, 31}) {
        INFO("scale " << s << " byte " << byte << " k " << k);
        REQUIRE(opref::mxfp4_value(blocks, scales, k) == double(mxfp4_element(blocks, scales, k)));
      }
    }
  }
  scales[0] = 255;
  CHECK(std::isnan(opref::mxfp4_value(blocks, scales, 0)));
}

TEST_CASE("small references by hand", "[opref]") {
  SECTION("gemv") {
    const uint16_t w[4] = {float_to_bf16(1.0f), float_to_bf16(-2.0f), float_to_bf16(0.5f), float_to_bf16(4.0f)};
    const float x[2] = {3.0f, 1.0f};
    const uint16_t b[2] = {float_to_bf16(1.0f), float_to_bf16(-1.0f)};
    const auto r = opref::gemv_bf16(w, 2, 2, x, b);
    CHECK(r.value[0] == 2.0);   // 3 - 2 + 1
    CHECK(r.scale[0] == 6.0);   // 3 + 2 + 1
    CHECK(r.value[1] == 4.5);   // 1.5 + 4 - 1
  }
  SECTION("rmsnorm") {
    const std::vector<float> x(8, 2.0f);
    const std::vector<uint16_t> g(8, float_to_bf16(1.0f));
    const auto t = opref::rmsnorm(x.data(), g.data(), 8, 0.0);
    CHECK(t[3] == Approx(1.0).epsilon(1e-15));
  }
  SECTION("swiglu clamps") {
    double s = 0;
    CHECK(opref::swiglu(10.0, 10.0, 7.0, &s) == Approx(7.0 / (1 + std::exp(-1.702 * 7.0)) * 8.0));
    CHECK(opref::swiglu(-10.0, -10.0, 7.0, &s) == Approx(-10.0 / (1 + std::exp(17.02)) * -6.0));
  }
  SECTION("attention: one key, and a sink of -inf") {
    std::vector<uint16_t> q(64 * 64, float_to_bf16(0.1f)), k(8 * 64, float_to_bf16(0.2f)), v(8 * 64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = float_to_bf16(float(i % 64) - 10.0f);
    std::vector<uint16_t> sinks(64, float_to_bf16(-std::numeric_limits<float>::infinity()));
    opref::AttnRefInput in;
    in.q = q.data(), in.k = k.data(), in.v = v.data(), in.sinks = sinks.data();
    auto r = opref::attention(in);
    CHECK(r.value[5 * 64 + 7] == -3.0);  // one key, no sink mass: o = v
    sinks.assign(64, float_to_bf16(0.0f));
    r = opref::attention(in);
    const double l = 64 * 0.1 * 0.2 * 0.125;  // (bf16-rounded inputs: close enough below)
    CHECK(r.value[5 * 64 + 7] == Approx(-3.0 * std::exp(l) / (std::exp(l) + 1.0)).epsilon(1e-2));
  }
  SECTION("router ties go to the lower index") {
    const std::vector<float> l(32, 1.0f);
    const auto r = opref::router_topk(l.data(), 32, 4);
    CHECK(r.index == std::vector<int>{0, 1, 2, 3});
    CHECK(r.weight[2] == Approx(0.25));
    const std::vector<double> v = {1.0, 3.0, 2.0, 3.0};
    CHECK(opref::argmax(v.data(), v.size()) == 1);
  }
}
