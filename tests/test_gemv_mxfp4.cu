// test_gemv_mxfp4.cu — device_ops/gemv_mxfp4.cuh (bf16 and FP8 activation paths) against the FP64
// reference: one expert's mlp1 (5760 x 2880) and mlp2 (2880 x 2880), four experts in one launch, row
// and K tails, realistic, wide and extreme e8m0 scales (0/1/2 and 250..252, and both sides of the
// one-multiply limit 128), for two warp splits.
#include <catch2/catch.hpp>

#include <string>

#include "device_ops/gemv_mxfp4.cuh"
#include "tests/harness.cuh"
#include "tests/reference/op_ref.h"

namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

constexpr int kThreads = 256;
constexpr int kRowsPerCta = 88;  // not a multiple of 16: CTAs end with a partial tile
constexpr int kNumStoredExperts = 6;
constexpr int kExpertSlots = 4;  // experts per token
constexpr int kExpertIds[kExpertSlots] = {5, 0, 3, 2};

// One CTA column per expert slot (blockIdx.y); the expert's matrix is picked through expert_ids.
// The bf16 path stages x; the fp8 path stages the codes/scales produced by quantize_test_kernel.
template <dev::Mxfp4Activations kAct, int kSplitK>
__global__ void gemv_mxfp4_test_kernel(float* y, const uint8_t* blocks, const uint8_t* scales,
                                       const dev::bf16* bias, const int* expert_ids, int rows, int k,
                                       int rows_per_cta, const float* x, const uint8_t* codes,
                                       const uint8_t* act_scales) {
  extern __shared__ __align__(16) uint8_t staged[];
  __shared__ float red[dev::kMaxWarpsPerBlock * dev::kMxfp4TileRows];
  const int slot = int(blockIdx.y), e = expert_ids[slot];
  const int nb = k / dev::kMxfp4BlockElems;
  const dev::Mxfp4Matrix w{blocks + int64_t(e) * rows * nb * dev::kMxfp4BlockBytes,
                           scales + int64_t(e) * rows * nb, rows, nb};
  if constexpr (kAct == dev::Mxfp4Activations::kBf16) {
    dev::stage_mxfp4_activations_bf16(staged, x, k);
  } else {
    dev::stage_mxfp4_activations_fp8(staged, codes, act_scales, k);
  }
  const int r0 = int(blockIdx.x) * rows_per_cta, r1 = min(rows, r0 + rows_per_cta);
  dev::block_gemv_mxfp4<kAct, kSplitK, 4>(w, bias ? bias + int64_t(e) * rows : nullptr, staged, r0, r1,
                                          red, [&](int r, float v) { y[int64_t(slot) * rows + r] = v; });
}

__global__ void quantize_test_kernel(uint8_t* codes, uint8_t* scales, const float* x, int k) {
  dev::block_quantize_fp8(codes, scales, x, k);
}

enum class Scales { kReal, kWide, kHuge, kTiny };
const char* name(Scales s) {
  switch (s) {
    case Scales::kReal: return "real [110,128]";
    case Scales::kWide: return "wide [100,140]";
    case Scales::kHuge: return "huge {250..252,126..129}";
    case Scales::kTiny: return "tiny {0,1,2,127..129}";
  }
  return "?";
}

struct Case {
  const char* name;
  int rows;
  int k;
};

template <dev::Mxfp4Activations kAct, int kSplitK>
void run_case(const Case& c, Scales mode, uint64_t seed) {
  Rng rng(seed);
  const int nb = c.k / 32;
  const size_t per_expert_blocks = size_t(c.rows) * nb * 16, per_expert_scales = size_t(c.rows) * nb;
  const auto blocks = random_bytes(per_expert_blocks * kNumStoredExperts, rng);
  std::vector<uint8_t> scales(per_expert_scales * kNumStoredExperts);
  static constexpr uint8_t kHuge[] = {250, 251, 252, 126, 127, 128, 129};
  static constexpr uint8_t kTiny[] = {0, 1, 2, 127, 128, 129};
  for (auto& s : scales) {
    switch (mode) {
      case Scales::kReal: s = uint8_t(110 + rng.below(19)); break;
      case Scales::kWide: s = uint8_t(100 + rng.below(41)); break;
      case Scales::kHuge: s = kHuge[rng.below(7)]; break;
      case Scales::kTiny: s = kTiny[rng.below(6)]; break;
    }
  }
  const auto bias = random_bf16(size_t(c.rows) * kNumStoredExperts, rng, -1.0, 1.0);
  // Activation magnitudes keep the extreme rows finite and out of FP32 subnormals.
  const double amp = mode == Scales::kHuge ? 0x1p-10 : (mode == Scales::kTiny ? 0x1p20 : 2.0);
  const auto x = random_bf16_floats(size_t(c.k), rng, -amp, amp);

  DeviceBuffer<uint8_t> d_blocks(blocks), d_scales(scales);
  DeviceBuffer<uint16_t> d_bias(bias);
  DeviceBuffer<int> d_ids(std::vector<int>(kExpertIds, kExpertIds + kExpertSlots));
  DeviceBuffer<float> d_x(x);
  DeviceBuffer<uint8_t> d_codes(static_cast<size_t>(c.k)), d_act_scales(static_cast<size_t>(nb));
  std::vector<float> x_used = x;
  size_t smem = size_t(dev::staged_bf16_bytes(c.k));
  if constexpr (kAct == dev::Mxfp4Activations::kFp8) {
    quantize_test_kernel<<<1, kThreads>>>(d_codes.get(), d_act_scales.get(), d_x.get(), c.k);
    GPTOSS_CHECK_LAUNCH();
    const auto codes = d_codes.download(), act_scales = d_act_scales.download();
    x_used = opref::dequantize_fp8_blocks(codes.data(), act_scales.data(), c.k);
    smem = size_t(dev::staged_fp8_bytes(c.k));
  }
  auto d_y = poisoned_f32(size_t(kExpertSlots) * c.rows);
  const dim3 grid((c.rows + kRowsPerCta - 1) / kRowsPerCta, kExpertSlots);
  gemv_mxfp4_test_kernel<kAct, kSplitK><<<grid, kThreads, smem>>>(
      d_y.get(), d_blocks.get(), d_scales.get(), reinterpret_cast<const dev::bf16*>(d_bias.get()), d_ids.get(),
      c.rows, c.k, kRowsPerCta, d_x.get(), d_codes.get(), d_act_scales.get());
  GPTOSS_CHECK_LAUNCH();
  const auto y = d_y.download();
  for (int slot = 0; slot < kExpertSlots; ++slot) {
    const int e = kExpertIds[slot];
    const auto ref = opref::gemv_mxfp4(blocks.data() + e * per_expert_blocks, scales.data() + e * per_expert_scales,
                                       c.rows, c.k, x_used.data(), bias.data() + size_t(e) * c.rows);
    const bool fp8 = kAct == dev::Mxfp4Activations::kFp8;
    const std::string what = std::string(c.name) + (fp8 ? " fp8" : " bf16") + " scales " + name(mode) +
                             " split " + std::to_string(kSplitK) + " slot " + std::to_string(slot) +
                             " expert " + std::to_string(e);
    GPTOSS_REQUIRE_PASS(compare(what.c_str(), y.data() + size_t(slot) * c.rows, ref.value.data(),
                                ref.scale.data(), size_t(c.rows), fp8 ? tol::kGemvMxfp4Fp8 : tol::kGemvMxfp4Bf16,
                                [](size_t i) { return "row " + std::to_string(i); }));
  }
}

template <dev::Mxfp4Activations kAct>
void run_all(const Case& c, Scales mode, uint64_t seed) {
  run_case<kAct, 1>(c, mode, seed);
  run_case<kAct, 4>(c, mode, seed);
}

}  // namespace

TEST_CASE("gemv_mxfp4 (bf16 activations) matches the fp64 reference", "[device_ops][gemv_mxfp4]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  SECTION("mlp1 and mlp2, four experts") {
    for (const Case c : {Case{"mlp1", 5760, 2880}, Case{"mlp2", 2880, 2880}}) {
      for (Scales s : {Scales::kReal, Scales::kWide}) run_all<dev::Mxfp4Activations::kBf16>(c, s, seed);
    }
  }
  SECTION("extreme scales and tails") {
    for (const Case c : {Case{"mlp2", 2880, 2880}, Case{"rows 100 K 160", 100, 160}, Case{"rows 37 K 32", 37, 32}}) {
      for (Scales s : {Scales::kHuge, Scales::kTiny, Scales::kWide}) run_all<dev::Mxfp4Activations::kBf16>(c, s, seed);
    }
  }
}

TEST_CASE("gemv_mxfp4 (fp8 activations) matches the fp64 reference", "[device_ops][gemv_mxfp4][fp8]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  SECTION("mlp1 and mlp2, four experts") {
    for (const Case c : {Case{"mlp1", 5760, 2880}, Case{"mlp2", 2880, 2880}}) {
      for (Scales s : {Scales::kReal, Scales::kWide}) run_all<dev::Mxfp4Activations::kFp8>(c, s, seed);
    }
  }
  SECTION("extreme scales and tails") {
    for (const Case c : {Case{"mlp2", 2880, 2880}, Case{"rows 100 K 160", 100, 160}, Case{"rows 37 K 32", 37, 32}}) {
      for (Scales s : {Scales::kHuge, Scales::kTiny, Scales::kWide}) run_all<dev::Mxfp4Activations::kFp8>(c, s, seed);
    }
  }
}
