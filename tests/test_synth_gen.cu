// test_synth_gen.cu — the synthetic-weight generator (model/synth_gen.h) evaluated on the GPU
// equals the same formulas on the host, bit for bit, for every tensor kind at the real fan-ins.
// (tests/test_synth.cpp checks that the host writer's synth_fill equals these formulas, so a GPU
// `--synthetic` model equals a `gptoss synth` checkpoint of the same shape and seed.)
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

// harness.cuh first: it brings the vendor runtime (__host__ __device__) that synth_gen.h assumes.
#include "tests/harness.cuh"
#include "model/synth_gen.h"

namespace {

using gptoss::conv::SynthKind;
using gptoss::test::DeviceBuffer;

// One value per thread: BF16 kinds write bits to out16, byte kinds to out8.
__global__ void synth_gen_test_kernel(uint16_t* out16, uint8_t* out8, uint64_t seed, uint32_t layer,
                                      SynthKind kind, uint32_t fan_in, uint64_t first, uint64_t n) {
  const uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  using namespace gptoss::conv;
  const uint64_t key = synth_tensor_key(seed, layer, kind);
  if (kind == SynthKind::kMlp1Blocks || kind == SynthKind::kMlp2Blocks) {
    out8[i] = synth_block_byte(key, first + i);
  } else if (kind == SynthKind::kMlp1Scales || kind == SynthKind::kMlp2Scales) {
    out8[i] = synth_scale_byte(key, synth_scale_base(fan_in), first + i);
  } else {
    out16[i] = synth_bf16_value(key, synth_is_norm(kind), synth_bf16_shift(kind, fan_in), first + i);
  }
}

}  // namespace

TEST_CASE("synth generator: device bits equal host bits", "[synth]") {
  using namespace gptoss::conv;
  struct Case {
    SynthKind kind;
    uint32_t fan_in;
  };
  const Case cases[] = {
      {SynthKind::kEmbed, 0},         {SynthKind::kAttnNorm, 0},     {SynthKind::kQkvWeight, 2880},
      {SynthKind::kQkvBias, 0},       {SynthKind::kSinks, 0},        {SynthKind::kOutWeight, 4096},
      {SynthKind::kOutBias, 0},       {SynthKind::kMlpNorm, 0},      {SynthKind::kRouterWeight, 2880},
      {SynthKind::kRouterBias, 0},    {SynthKind::kMlp1Blocks, 2880}, {SynthKind::kMlp1Scales, 2880},
      {SynthKind::kMlp1Bias, 0},      {SynthKind::kMlp2Blocks, 2880}, {SynthKind::kMlp2Scales, 2880},
      {SynthKind::kMlp2Bias, 0},      {SynthKind::kFinalNorm, 0},    {SynthKind::kLmHead, 2880},
  };
  constexpr uint64_t kCount = 1u << 20;
  DeviceBuffer<uint16_t> d16(kCount);
  DeviceBuffer<uint8_t> d8(kCount);
  for (uint64_t seed : {0ull, 1ull, 0x123456789abcdefull}) {
    for (const auto& c : cases) {
      // Two windows: the start of the tensor and one far out (64-bit indices).
      for (uint64_t first : {0ull, (1ull << 33) + 3}) {
        const uint32_t layer = 35;
        synth_gen_test_kernel<<<kCount / 256, 256>>>(d16.get(), d8.get(), seed, layer, c.kind,
                                                     c.fan_in, first, kCount);
        GPTOSS_CHECK_LAUNCH();
        const auto got16 = d16.download();
        const auto got8 = d8.download();
        const uint64_t key = synth_tensor_key(seed, layer, c.kind);
        size_t bad = 0;
        for (uint64_t i = 0; i < kCount; ++i) {
          if (c.kind == SynthKind::kMlp1Blocks || c.kind == SynthKind::kMlp2Blocks) {
            bad += got8[i] != synth_block_byte(key, first + i);
          } else if (c.kind == SynthKind::kMlp1Scales || c.kind == SynthKind::kMlp2Scales) {
            bad += got8[i] != synth_scale_byte(key, synth_scale_base(c.fan_in), first + i);
          } else {
            bad += got16[i] != synth_bf16_value(key, synth_is_norm(c.kind),
                                                synth_bf16_shift(c.kind, c.fan_in), first + i);
          }
        }
        INFO("kind " << static_cast<int>(c.kind) << " seed " << seed << " first " << first);
        CHECK(bad == 0);
      }
    }
  }
}
