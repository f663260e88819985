// test_gemv_bf16.cu — device_ops/gemv_bf16.cuh against the FP64 reference on the real shapes (QKV,
// O, router, the 201088-row LM head with its argmax) and on row/K tails, for several warp splits.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "device_ops/gemv_bf16.cuh"
#include "device_ops/router_topk.cuh"
#include "tests/harness.cuh"
#include "tests/reference/op_ref.h"

namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

constexpr int kThreads = 256;
constexpr int kRowsPerCta = 50;  // not a multiple of any tile: every CTA ends with a partial tile

template <int kRows, int kSplitK, int kUnroll>
__global__ void gemv_bf16_test_kernel(float* y, const dev::bf16* w, const dev::bf16* bias, const float* x,
                                      int k, int rows, int rows_per_cta) {
  extern __shared__ float xs[];
  __shared__ float red[dev::kMaxWarpsPerBlock * kRows];
  for (int i = int(threadIdx.x); i < k; i += int(blockDim.x)) xs[i] = x[i];
  __syncthreads();
  const int r0 = int(blockIdx.x) * rows_per_cta, r1 = min(rows, r0 + rows_per_cta);
  dev::block_gemv_bf16<kRows, kSplitK, kUnroll>(w, k, bias, xs, k, r0, r1, red,
                                                [&](int r, float v) { y[r] = v; });
}

// LM head: logits and a per-CTA argmax from the GEMV epilogue, merged by a second kernel.
__global__ void lm_head_argmax_test_kernel(dev::ArgMax* partial, float* logits, const dev::bf16* w,
                                           const float* x, int k, int rows, int rows_per_cta) {
  extern __shared__ float xs[];
  __shared__ float red[dev::kMaxWarpsPerBlock * 4];
  __shared__ dev::ArgMax scratch[dev::kMaxWarpsPerBlock];
  for (int i = int(threadIdx.x); i < k; i += int(blockDim.x)) xs[i] = x[i];
  __syncthreads();
  const int r0 = int(blockIdx.x) * rows_per_cta, r1 = min(rows, r0 + rows_per_cta);
  dev::ArgMax best = dev::argmax_identity();
  dev::block_gemv_bf16<4, 1, 2>(w, k, nullptr, xs, k, r0, r1, red, [&](int r, float v) {
    logits[r] = v;
    best = dev::argmax_merge(best, dev::ArgMax{v, r});
  });
  best = dev::block_argmax(best, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = best;
}

__global__ void argmax_merge_test_kernel(dev::ArgMax* out, const dev::ArgMax* partial, int n) {
  __shared__ dev::ArgMax scratch[dev::kMaxWarpsPerBlock];
  dev::ArgMax best = dev::argmax_identity();
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) best = dev::argmax_merge(best, partial[i]);
  best = dev::block_argmax(best, scratch);
  if (threadIdx.x == 0) *out = best;
}

struct Shape {
  const char* name;
  int rows;
  int k;
  bool bias;
};

template <int kRows, int kSplitK, int kUnroll>
void run_case(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  const auto w = random_bf16(size_t(shape.rows) * shape.k, rng, -1.0, 1.0);
  const auto bias = shape.bias ? random_bf16(size_t(shape.rows), rng, -1.0, 1.0) : std::vector<uint16_t>{};
  const auto x = random_bf16_floats(size_t(shape.k), rng, -2.0, 2.0);
  DeviceBuffer<uint16_t> d_w(w), d_bias(bias);
  DeviceBuffer<float> d_x(x);
  auto d_y = poisoned_f32(static_cast<size_t>(shape.rows));
  const int grid = (shape.rows + kRowsPerCta - 1) / kRowsPerCta;
  gemv_bf16_test_kernel<kRows, kSplitK, kUnroll><<<grid, kThreads, size_t(shape.k) * sizeof(float)>>>(
      d_y.get(), reinterpret_cast<const dev::bf16*>(d_w.get()),
      shape.bias ? reinterpret_cast<const dev::bf16*>(d_bias.get()) : nullptr, d_x.get(), shape.k,
      shape.rows, kRowsPerCta);
  GPTOSS_CHECK_LAUNCH();
  const auto y = d_y.download();
  const auto ref = opref::gemv_bf16(w.data(), shape.rows, shape.k, x.data(), shape.bias ? bias.data() : nullptr);
  const std::string what = std::string(shape.name) + " rows " + std::to_string(shape.rows) + " K " +
                           std::to_string(shape.k) + " tile " + std::to_string(kRows) + " split " +
                           std::to_string(kSplitK);
  GPTOSS_REQUIRE_PASS(compare(what.c_str(), y.data(), ref.value.data(), ref.scale.data(), y.size(),
                              tol::kGemvBf16, [](size_t i) { return "row " + std::to_string(i); }));
}

}  // namespace

TEST_CASE("gemv_bf16 matches the fp64 reference on model shapes and tails", "[device_ops][gemv_bf16]") {
  const Shape shape = GENERATE(Shape{"qkv", 5120, 2880, true}, Shape{"o_proj", 2880, 4096, true},
                               Shape{"router20b", 32, 2880, true}, Shape{"router120b", 128, 2880, true},
                               Shape{"tail rows", 37, 2880, false}, Shape{"single load", 9, 8, false},
                               Shape{"K tail", 21, 72, true}, Shape{"step+tail", 40, 264, false});
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed << " shape " << shape.name);
  run_case<4, 1, 2>(shape, seed);
  run_case<2, 4, 2>(shape, seed);
  run_case<1, 8, 4>(shape, seed);
}

TEST_CASE("LM head gemv_bf16 + argmax over 201088 rows", "[device_ops][gemv_bf16][argmax]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  const int rows = 201088, k = 2880;  // vocab, hidden
  const auto w = random_bf16(size_t(rows) * k, rng, -1.0, 1.0);
  const auto x = random_bf16_floats(size_t(k), rng, -1.0, 1.0);
  DeviceBuffer<uint16_t> d_w(w);
  DeviceBuffer<float> d_x(x);
  auto d_logits = poisoned_f32(static_cast<size_t>(rows));
  const int rows_per_cta = 1536;
  const int grid = (rows + rows_per_cta - 1) / rows_per_cta;
  DeviceBuffer<dev::ArgMax> d_partial(static_cast<size_t>(grid)), d_best(1);
  lm_head_argmax_test_kernel<<<grid, kThreads, size_t(k) * sizeof(float)>>>(
      d_partial.get(), d_logits.get(), reinterpret_cast<const dev::bf16*>(d_w.get()), d_x.get(), k, rows,
      rows_per_cta);
  GPTOSS_CHECK_LAUNCH();
  argmax_merge_test_kernel<<<1, kThreads>>>(d_best.get(), d_partial.get(), grid);
  GPTOSS_CHECK_LAUNCH();
  const auto logits = d_logits.download();
  const dev::ArgMax best = d_best.download()[0];
  const auto ref = opref::gemv_bf16(w.data(), rows, k, x.data(), nullptr);
  GPTOSS_REQUIRE_PASS(compare("lm_head logits", logits.data(), ref.value.data(), ref.scale.data(), logits.size(),
                              tol::kGemvBf16, [](size_t i) { return "vocab id " + std::to_string(i); }));
  // The device pick is exactly the argmax of the device logits (lowest index on ties) ...
  const std::vector<double> dev_logits(logits.begin(), logits.end());
  REQUIRE(best.index == int(opref::argmax(dev_logits.data(), dev_logits.size())));
  REQUIRE(best.value == logits[size_t(best.index)]);
  // ... and within the GEMV tolerance of the true maximum (equal to it unless a near-tie).
  const size_t ref_best = opref::argmax(ref.value.data(), ref.value.size());
  const double slack = 2 * tol::kGemvBf16.rtol * *std::max_element(ref.scale.begin(), ref.scale.end());
  INFO("device pick " << best.index << " (ref " << ref.value[size_t(best.index)] << "), ref pick " << ref_best
                      << " (" << ref.value[ref_best] << "), slack " << slack);
  REQUIRE(ref.value[size_t(best.index)] >= ref.value[ref_best] - slack);
}
