// test_norm_rope_swiglu.cu — the pointwise ops against their FP64 references: RMSNorm
// (device_ops/rmsnorm.cuh), YaRN RoPE in both modes (rope.cuh, rope_yarn.h) at positions 0, 1,
// around the 128-token window, 4095/4096 and up to 131071, and the clamped SwiGLU (swiglu.cuh).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "device_ops/rmsnorm.cuh"
#include "device_ops/rope.cuh"
#include "model/rope_yarn.h"
#include "device_ops/swiglu.cuh"
#include "tests/harness.cuh"
#include "tests/reference/op_ref.h"

namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

__global__ void rmsnorm_test_kernel(float* out, const float* x, const dev::bf16* gain, int n, float eps) {
  __shared__ float scratch[dev::kMaxWarpsPerBlock];
  dev::block_rmsnorm(x, gain, n, eps, scratch, [&](int i, float v) { out[i] = v; });
}

__global__ void rmsnorm_bf16_in_test_kernel(float* out, const dev::bf16* x, const dev::bf16* gain, int n,
                                            float eps) {
  __shared__ float scratch[dev::kMaxWarpsPerBlock];
  dev::block_rmsnorm(x, gain, n, eps, scratch, [&](int i, float v) { out[i] = v; });
}

__global__ void rope_test_kernel(float* x, int num_heads, int pos, dev::RopeTable table) {
  dev::block_rope_inplace<64>(x, num_heads, pos, table);
}

__global__ void swiglu_test_kernel(float* out, const float* h, int channels, float limit) {
  dev::block_swiglu(h, channels, limit, [&](int m, float v) { out[m] = v; });
}

}  // namespace

TEST_CASE("rmsnorm matches the fp64 reference", "[device_ops][rmsnorm]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  const float eps = 1e-5f;  // rms_norm_eps
  for (int n : {2880, 256, 264, 8}) {  // hidden, exact tile, tile + tail, tail only
    for (int threads : {256, 1024, 32}) {
      for (double amp : {1.0, 300.0, 1e-3}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (auto& v : x) v = float(rng.uniform(-amp, amp));  // the FP32 residual stream
        const auto gain = random_bf16(size_t(n), rng, -2.0, 2.0);
        DeviceBuffer<float> d_x(x);
        DeviceBuffer<uint16_t> d_gain(gain);
        auto d_out = poisoned_f32(static_cast<size_t>(n));
        rmsnorm_test_kernel<<<1, threads>>>(d_out.get(), d_x.get(), reinterpret_cast<const dev::bf16*>(d_gain.get()),
                                            n, eps);
        GPTOSS_CHECK_LAUNCH();
        const auto out = d_out.download();
        const auto ref = opref::rmsnorm(x.data(), gain.data(), n, eps);
        const std::string what = "rmsnorm n " + std::to_string(n) + " threads " + std::to_string(threads) +
                                 " amplitude " + std::to_string(amp);
        GPTOSS_REQUIRE_PASS(compare(what.c_str(), out.data(), ref.data(), nullptr, out.size(), tol::kBf16Output,
                                    index_coords()));
        for (float v : out) REQUIRE(v == round_to_bf16(v));  // stored values are bf16
      }
    }
  }
  SECTION("bf16 input (the embedding row) and an all-zero input") {
    const int n = 2880;
    auto xb = random_bf16(size_t(n), rng, -0.05, 0.05);
    const auto gain = random_bf16(size_t(n), rng, -2.0, 2.0);
    for (bool zero : {false, true}) {
      if (zero) std::fill(xb.begin(), xb.end(), uint16_t(0));
      DeviceBuffer<uint16_t> d_x(xb), d_gain(gain);
      auto d_out = poisoned_f32(static_cast<size_t>(n));
      rmsnorm_bf16_in_test_kernel<<<1, 256>>>(d_out.get(), reinterpret_cast<const dev::bf16*>(d_x.get()),
                                              reinterpret_cast<const dev::bf16*>(d_gain.get()), n, eps);
      GPTOSS_CHECK_LAUNCH();
      const auto out = d_out.download();
      const auto xf = to_float(xb);
      const auto ref = opref::rmsnorm(xf.data(), gain.data(), n, eps);
      GPTOSS_REQUIRE_PASS(compare(zero ? "rmsnorm zeros" : "rmsnorm bf16 input", out.data(), ref.data(), nullptr,
                                  out.size(), tol::kBf16Output, index_coords()));
    }
  }
}

TEST_CASE("YaRN rope matches the fp64 reference in both modes", "[device_ops][rope]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  const YarnParams params;  // gpt-oss: head_dim 64, theta 150000, factor 32, beta 32/1, 4096
  const int num_heads = 64 + 8;  // q heads and k heads of one position
  const int max_pos = 131072;    // max_position_embeddings
  const auto inv_freq = yarn_inv_freq_f32(params);
  const auto table = yarn_cos_sin_table(params, max_pos);
  const double conc = yarn_concentration(params);
  DeviceBuffer<float> d_inv(inv_freq), d_table(table);
  for (int pos : {0, 1, 126, 127, 128, 129, 4095, 4096, 32767, 131071}) {
    for (bool use_table : {false, true}) {
      const auto x = random_bf16_floats(size_t(num_heads) * 64, rng, -4.0, 4.0);
      DeviceBuffer<float> d_x(x);
      const dev::RopeTable t{d_inv.get(), float(conc), use_table ? d_table.get() : nullptr};
      rope_test_kernel<<<1, 256>>>(d_x.get(), num_heads, pos, t);
      GPTOSS_CHECK_LAUNCH();
      const auto out = d_x.download();
      const auto ref = use_table ? opref::rope_table(x.data(), num_heads, 64, pos, table.data())
                                 : opref::rope_computed(x.data(), num_heads, 64, pos, inv_freq.data(), conc);
      const std::string what = std::string("rope ") + (use_table ? "table" : "computed") + " pos " + std::to_string(pos);
      GPTOSS_REQUIRE_PASS(compare(what.c_str(), out.data(), ref.value.data(), ref.scale.data(), out.size(),
                                  tol::kRope, [](size_t i) {
                                    return "head " + std::to_string(i / 64) + " dim " + std::to_string(i % 64);
                                  }));
    }
  }
}

TEST_CASE("clamped swiglu matches the fp64 reference", "[device_ops][swiglu]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  const int channels = 2880;  // intermediate
  const float limit = 7.0f;   // swiglu_limit
  std::vector<float> h(size_t(2 * channels));
  for (auto& v : h) v = float(rng.uniform(-10.0, 10.0));  // both clamps are hit
  // Named edge values: the clamp boundaries, zero, and a gate whose exp(-1.702 g) overflows.
  const float edges[][2] = {{7.0f, 7.0f}, {7.0f, -7.0f}, {-7.0f, -1.0f}, {0.0f, 3.0f}, {-100.0f, 2.0f},
                            {-60.0f, -8.0f}, {100.0f, 100.0f}, {1e-30f, 0.5f}, {-1e-30f, -0.999f}};
  for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); ++i) h[2 * i] = edges[i][0], h[2 * i + 1] = edges[i][1];
  DeviceBuffer<float> d_h(h);
  auto d_out = poisoned_f32(static_cast<size_t>(channels));
  swiglu_test_kernel<<<2, 256>>>(d_out.get(), d_h.get(), channels, limit);  // both blocks write everything
  GPTOSS_CHECK_LAUNCH();
  const auto out = d_out.download();
  std::vector<double> ref(static_cast<size_t>(channels)), scale(static_cast<size_t>(channels));
  for (int m = 0; m < channels; ++m) ref[size_t(m)] = opref::swiglu(h[size_t(2 * m)], h[size_t(2 * m + 1)], limit, &scale[size_t(m)]);
  GPTOSS_REQUIRE_PASS(compare("swiglu", out.data(), ref.data(), scale.data(), out.size(), tol::kSwiglu,
                              [](size_t i) { return "channel " + std::to_string(i); }));
  SECTION("NaN propagates through the clamps") {
    std::vector<float> hn = {std::numeric_limits<float>::quiet_NaN(), 1.0f, 1.0f, std::numeric_limits<float>::quiet_NaN()};
    DeviceBuffer<float> d_hn(hn);
    auto d_o = poisoned_f32(2);
    swiglu_test_kernel<<<1, 32>>>(d_o.get(), d_hn.get(), 2, limit);
    GPTOSS_CHECK_LAUNCH();
    const auto o = d_o.download();
    REQUIRE(std::isnan(o[0]));
    REQUIRE(std::isnan(o[1]));
    REQUIRE(float_bits(o[0]) != kPoisonF32Bits);
  }
}
