// test_router_topk.cu — device_ops/router_topk.cuh: top-4 + softmax over the chosen four for 32 and
// 128 experts (random, all-equal, planted ties, -inf entries, and fed by the router GEMV), and the
// ArgMax merge over a 201088-entry vocabulary split over many CTAs (lowest index wins ties).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "device_ops/gemv_bf16.cuh"
#include "device_ops/router_topk.cuh"
#include "tests/harness.cuh"
#include "tests/reference/op_ref.h"

namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

constexpr int kTopK = 4;          // experts_per_token
constexpr int kMaxPerLane = 4;    // up to 128 experts
constexpr int kMaxExperts = dev::kWarpSize * kMaxPerLane;

// Warp w of block b handles logit set b * warps + w (sets of num_experts logits).
__global__ void topk_test_kernel(int* idx, float* weight, const float* logits, int num_experts, int num_sets) {
  const int set = int(blockIdx.x) * dev::num_warps() + dev::warp_id();
  if (set >= num_sets) return;
  const auto r = dev::warp_router_topk<kTopK, kMaxPerLane>(logits + int64_t(set) * num_experts, num_experts);
  if (dev::lane_id() == 0) {
    for (int k = 0; k < kTopK; ++k) idx[set * kTopK + k] = r.index[k], weight[set * kTopK + k] = r.weight[k];
  }
}

// The router phase: logits = W t + b in one CTA, then the top-4 from shared memory.
__global__ void router_test_kernel(float* logits_out, int* idx, float* weight, const dev::bf16* w,
                                   const dev::bf16* bias, const float* t, int num_experts, int k) {
  extern __shared__ float xs[];
  __shared__ float red[dev::kMaxWarpsPerBlock * 2];
  __shared__ float logits[kMaxExperts];
  for (int i = int(threadIdx.x); i < k; i += int(blockDim.x)) xs[i] = t[i];
  __syncthreads();
  dev::block_gemv_bf16<2, 1, 2>(w, k, bias, xs, k, 0, num_experts, red, [&](int r, float v) { logits[r] = v; });
  __syncthreads();
  if (dev::warp_id() == 0) {
    const auto r = dev::warp_router_topk<kTopK, kMaxPerLane>(logits, num_experts);
    if (dev::lane_id() == 0) {
      for (int j = 0; j < kTopK; ++j) idx[j] = r.index[j], weight[j] = r.weight[j];
    }
  }
  for (int i = int(threadIdx.x); i < num_experts; i += int(blockDim.x)) logits_out[i] = logits[i];
}

__global__ void argmax_test_kernel(dev::ArgMax* partial, const float* v, int n, int per_cta) {
  __shared__ dev::ArgMax scratch[dev::kMaxWarpsPerBlock];
  dev::ArgMax best = dev::argmax_identity();
  const int b = int(blockIdx.x) * per_cta, e = min(n, b + per_cta);
  for (int i = b + int(threadIdx.x); i < e; i += int(blockDim.x)) best = dev::argmax_merge(best, dev::ArgMax{v[i], i});
  best = dev::block_argmax(best, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = best;
}

__global__ void argmax_final_test_kernel(dev::ArgMax* out, const dev::ArgMax* partial, int n) {
  __shared__ dev::ArgMax scratch[dev::kMaxWarpsPerBlock];
  dev::ArgMax best = dev::argmax_identity();
  // Reverse order on purpose: the result must not depend on the merge order.
  for (int i = n - 1 - int(threadIdx.x); i >= 0; i -= int(blockDim.x)) best = dev::argmax_merge(best, partial[i]);
  best = dev::block_argmax(best, scratch);
  if (threadIdx.x == 0) *out = best;
}

void check_sets(const std::vector<float>& logits, int num_experts, const char* what) {
  const int sets = int(logits.size()) / num_experts;
  DeviceBuffer<float> d_logits(logits);
  DeviceBuffer<int> d_idx(std::vector<int>(size_t(sets) * kTopK, -1));
  auto d_w = poisoned_f32(size_t(sets) * kTopK);
  topk_test_kernel<<<(sets + 7) / 8, 256>>>(d_idx.get(), d_w.get(), d_logits.get(), num_experts, sets);
  GPTOSS_CHECK_LAUNCH();
  const auto idx = d_idx.download();
  const auto w = d_w.download();
  for (int s = 0; s < sets; ++s) {
    const auto ref = opref::router_topk(logits.data() + size_t(s) * num_experts, num_experts, kTopK);
    for (int k = 0; k < kTopK; ++k) {
      INFO(what << " set " << s << " rank " << k << " device expert " << idx[size_t(s * kTopK + k)] << " ref "
                << ref.index[size_t(k)] << " weight " << w[size_t(s * kTopK + k)] << " ref " << ref.weight[size_t(k)]);
      REQUIRE(idx[size_t(s * kTopK + k)] == ref.index[size_t(k)]);
      REQUIRE(std::fabs(w[size_t(s * kTopK + k)] - ref.weight[size_t(k)]) <= tol::kRouterWeights.rtol * ref.weight[size_t(k)]);
    }
  }
}

}  // namespace

TEST_CASE("router top-4 + softmax matches the reference", "[device_ops][router]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  for (int e : {32, 128}) {  // num_experts of 20b and 120b
    const std::string tag = std::to_string(e) + " experts";
    std::vector<float> random(size_t(e) * 64);
    for (auto& v : random) v = float(rng.uniform(-4.0, 4.0));
    check_sets(random, e, (tag + " random").c_str());

    std::vector<float> equal(size_t(e), 0.75f);  // all equal: experts 0..3, weights 1/4
    check_sets(equal, e, (tag + " all equal").c_str());

    // Planted ties at the top and across the 4th/5th place; -inf entries; -0.0 vs +0.0.
    std::vector<float> ties(size_t(e) * 4);
    for (int s = 0; s < 4; ++s) {
      float* l = ties.data() + size_t(s) * e;
      for (int i = 0; i < e; ++i) l[i] = float(rng.uniform(-4.0, 1.0));
      const int a = rng.below(e), b = rng.below(e), c = rng.below(e);
      if (s == 0) l[a] = l[b] = l[c] = 3.0f;                                      // three-way tie at the top
      if (s == 1) l[a] = 3.0f, l[b] = 2.5f, l[c] = 2.0f, l[(c + 7) % e] = 2.0f, l[(c + 9) % e] = 2.0f;  // 4th/5th tie
      if (s == 2) {
        for (int i = 0; i < e; ++i) l[i] = (i % 3 == 0) ? -std::numeric_limits<float>::infinity() : l[i];
      }
      if (s == 3) {
        for (int i = 0; i < e; ++i) l[i] = -std::numeric_limits<float>::infinity();
        l[a] = 0.0f, l[b] = -0.0f, l[c] = 0.0f;  // zeros tie; the rest is -inf
      }
    }
    check_sets(ties, e, (tag + " ties").c_str());
  }
}

TEST_CASE("router gemv + top-4 end to end", "[device_ops][router]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  const int k = 2880;  // hidden
  for (int e : {32, 128}) {
    const auto w = random_bf16(size_t(e) * k, rng, -0.05, 0.05);
    const auto bias = random_bf16(size_t(e), rng, -0.5, 0.5);
    const auto t = random_bf16_floats(size_t(k), rng, -2.0, 2.0);
    DeviceBuffer<uint16_t> d_w(w), d_bias(bias);
    DeviceBuffer<float> d_t(t);
    auto d_logits = poisoned_f32(static_cast<size_t>(e));
    auto d_weight = poisoned_f32(kTopK);
    DeviceBuffer<int> d_idx(static_cast<size_t>(kTopK));
    router_test_kernel<<<1, 256, size_t(k) * sizeof(float)>>>(d_logits.get(), d_idx.get(), d_weight.get(),
                                                              reinterpret_cast<const dev::bf16*>(d_w.get()),
                                                              reinterpret_cast<const dev::bf16*>(d_bias.get()),
                                                              d_t.get(), e, k);
    GPTOSS_CHECK_LAUNCH();
    const auto logits = d_logits.download();
    const auto idx = d_idx.download();
    const auto weight = d_weight.download();
    const auto ref = opref::gemv_bf16(w.data(), e, k, t.data(), bias.data());
    GPTOSS_REQUIRE_PASS(compare("router logits", logits.data(), ref.value.data(), ref.scale.data(), logits.size(),
                                tol::kGemvBf16, index_coords()));
    // The choice and weights follow the device logits exactly ...
    const auto from_device = opref::router_topk(logits.data(), e, kTopK);
    for (int j = 0; j < kTopK; ++j) {
      REQUIRE(idx[size_t(j)] == from_device.index[size_t(j)]);
      REQUIRE(std::fabs(weight[size_t(j)] - from_device.weight[size_t(j)]) <= tol::kRouterWeights.rtol * from_device.weight[size_t(j)]);
    }
    // ... and match the fp64 choice unless the 4th and 5th logits are within the GEMV tolerance.
    std::vector<float> ref_f(ref.value.begin(), ref.value.end());
    const auto exact = opref::router_topk(ref_f.data(), e, kTopK + 1);
    const double slack = 2 * tol::kGemvBf16.rtol * *std::max_element(ref.scale.begin(), ref.scale.end());
    if (ref.value[size_t(exact.index[3])] - ref.value[size_t(exact.index[4])] > slack) {
      std::vector<int> a(idx.begin(), idx.end()), b(exact.index.begin(), exact.index.begin() + kTopK);
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      REQUIRE(a == b);
    }
  }
}

TEST_CASE("argmax over the vocabulary: deterministic, lowest index on ties", "[device_ops][argmax]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  const int n = 201088;  // vocab_size
  for (int variant = 0; variant < 4; ++variant) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = float(rng.uniform(-30.0, 30.0));
    int want;
    if (variant == 0) {  // a planted maximum repeated at several indices
      const int a = rng.below(n), b = rng.below(n), c = rng.below(n);
      v[size_t(a)] = v[size_t(b)] = v[size_t(c)] = 100.0f;
      want = std::min({a, b, c});
    } else if (variant == 1) {  // everything equal
      std::fill(v.begin(), v.end(), -1.5f);
      want = 0;
    } else if (variant == 2) {  // the maximum at the last index, ties in other CTAs' ranges
      v[size_t(n - 1)] = 50.0f;
      v[5] = 49.0f;
      want = n - 1;
    } else {  // -inf everywhere except two equal values
      std::fill(v.begin(), v.end(), -std::numeric_limits<float>::infinity());
      v[123456] = v[98765] = -3.0f;
      want = 98765;
    }
    DeviceBuffer<float> d_v(v);
    const int per_cta = 1531;  // odd split on purpose
    const int grid = (n + per_cta - 1) / per_cta;
    DeviceBuffer<dev::ArgMax> d_partial(static_cast<size_t>(grid)), d_best(1);
    argmax_test_kernel<<<grid, 256>>>(d_partial.get(), d_v.get(), n, per_cta);
    GPTOSS_CHECK_LAUNCH();
    argmax_final_test_kernel<<<1, 128>>>(d_best.get(), d_partial.get(), grid);
    GPTOSS_CHECK_LAUNCH();
    const auto best = d_best.download()[0];
    std::vector<double> vd(v.begin(), v.end());
    if (variant == 0 || variant == 2) REQUIRE(want == int(opref::argmax(vd.data(), vd.size())));
    INFO("variant " << variant << " device " << best.index << " want " << want);
    REQUIRE(best.index == want);
    REQUIRE(best.value == v[size_t(want)]);
  }
}
