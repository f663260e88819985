// test_attention_decode.cu — device_ops/attention_decode.cuh against the FP64 reference: 64 query
// heads over 8 KV heads (GQA 8:1) with sinks, sliding (128 keys including the current one) and full
// layers, positions 0, 1, 126..129, 1000 and 32767, a linear cache and a 128-slot ring, the key range
// in one CTA or split over 3..64 CTAs and merged. The current position's cache slot and every slot
// that must not be read hold NaN, so reading one shows up in the output.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "device_ops/attention_decode.cuh"
#include "tests/harness.cuh"
#include "tests/reference/op_ref.h"

namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

constexpr int kHeads = 64, kKvHeads = 8, kDim = 64;  // num_heads, num_kv_heads, head_dim
constexpr int kQDim = kHeads * kDim, kKvDim = kKvHeads * kDim;
constexpr int kWindow = 128;  // sliding_window
constexpr int kThreads = 256;
constexpr float kScale = 0.125f;  // 1/sqrt(head_dim)
static_assert(kHeads / kKvHeads == dev::kAttnGroup && kDim == dev::kAttnHeadDim, "gpt-oss shapes");

struct Layout {
  const dev::bf16* qkv;  // [q | k | v] of the current position (the QKV output)
  const dev::bf16* k_cache;
  const dev::bf16* v_cache;
  int ring_slots;
  int pos;
  int key_begin;
};

__device__ dev::AttnKv kv_of(const Layout& L, int g) {
  return dev::AttnKv{L.k_cache + g * kDim, L.v_cache + g * kDim, kKvDim, L.ring_slots,
                     L.qkv + kQDim + g * kDim, L.qkv + kQDim + kKvDim + g * kDim, L.pos};
}

// grid = (KV heads, chunks): chunk c of [key_begin, pos] -> partials[g][c].
__global__ void attention_partial_test_kernel(float* partials, Layout L, int num_chunks) {
  extern __shared__ __align__(16) float smem[];
  const int g = int(blockIdx.x), c = int(blockIdx.y);
  const int n = L.pos + 1 - L.key_begin;
  const int b = L.key_begin + int(int64_t(n) * c / num_chunks), e = L.key_begin + int(int64_t(n) * (c + 1) / num_chunks);
  dev::block_attention_partial(partials + (int64_t(g) * num_chunks + c) * dev::kAttnPartialFloats,
                               L.qkv + g * dev::kAttnGroup * kDim, kScale, kv_of(L, g), b, e, smem);
}

__global__ void attention_finalize_test_kernel(dev::bf16* out, const float* partials, int num_chunks,
                                               const dev::bf16* sinks) {
  const int g = int(blockIdx.x);
  dev::attention_finalize(out + g * dev::kAttnGroup * kDim, partials + int64_t(g) * num_chunks * dev::kAttnPartialFloats,
                          num_chunks, dev::kAttnPartialFloats, sinks + g * dev::kAttnGroup);
}

__global__ void attention_single_test_kernel(dev::bf16* out, Layout L, const dev::bf16* sinks) {
  extern __shared__ __align__(16) float smem[];
  const int g = int(blockIdx.x);
  dev::block_attention(out + g * dev::kAttnGroup * kDim, L.qkv + g * dev::kAttnGroup * kDim, kScale, kv_of(L, g),
                       L.key_begin, L.pos + 1, sinks + g * dev::kAttnGroup, smem);
}

void run_case(int pos, bool sliding, bool ring, int num_chunks, uint64_t seed) {
  Rng rng(seed);
  const int positions = pos + 1;
  const auto q = random_bf16(size_t(kQDim), rng, -3.0, 3.0);
  const auto k = random_bf16(size_t(positions) * kKvDim, rng, -1.0, 1.0);  // by position
  const auto v = random_bf16(size_t(positions) * kKvDim, rng, -1.0, 1.0);
  const auto sinks = random_bf16(size_t(kHeads), rng, -2.0, 4.0);
  const int key_begin = sliding ? std::max(0, pos - kWindow + 1) : 0;

  // The QKV output of this position, and the cache: slots of older positions hold their k/v;
  // the current position's slot and all others hold NaN.
  std::vector<uint16_t> qkv(q);
  qkv.insert(qkv.end(), k.begin() + size_t(pos) * kKvDim, k.begin() + size_t(pos + 1) * kKvDim);
  qkv.insert(qkv.end(), v.begin() + size_t(pos) * kKvDim, v.begin() + size_t(pos + 1) * kKvDim);
  const int slots = ring ? kWindow : positions + 64;
  std::vector<uint16_t> kc(size_t(slots) * kKvDim, kPoisonBf16Bits), vc(kc);
  for (int j = key_begin; j < pos; ++j) {
    const int s = ring ? j % kWindow : j;
    std::copy_n(k.begin() + size_t(j) * kKvDim, kKvDim, kc.begin() + size_t(s) * kKvDim);
    std::copy_n(v.begin() + size_t(j) * kKvDim, kKvDim, vc.begin() + size_t(s) * kKvDim);
  }
  DeviceBuffer<uint16_t> d_qkv(qkv), d_kc(kc), d_vc(vc), d_sinks(sinks);
  auto d_out = poisoned_bf16(static_cast<size_t>(kQDim));
  const Layout L{reinterpret_cast<const dev::bf16*>(d_qkv.get()), reinterpret_cast<const dev::bf16*>(d_kc.get()),
                 reinterpret_cast<const dev::bf16*>(d_vc.get()), ring ? kWindow : 0, pos, key_begin};
  const auto* d_sinks_bf16 = reinterpret_cast<const dev::bf16*>(d_sinks.get());
  auto* d_out_bf16 = reinterpret_cast<dev::bf16*>(d_out.get());
  const size_t smem = size_t(dev::attention_smem_bytes(kThreads / dev::kWarpSize));
  if (num_chunks == 1) {
    attention_single_test_kernel<<<kKvHeads, kThreads, smem>>>(d_out_bf16, L, d_sinks_bf16);
    GPTOSS_CHECK_LAUNCH();
  } else {
    auto d_partials = poisoned_f32(size_t(kKvHeads) * num_chunks * dev::kAttnPartialFloats);
    attention_partial_test_kernel<<<dim3(kKvHeads, num_chunks), kThreads, smem>>>(d_partials.get(), L, num_chunks);
    GPTOSS_CHECK_LAUNCH();
    attention_finalize_test_kernel<<<kKvHeads, kThreads>>>(d_out_bf16, d_partials.get(), num_chunks, d_sinks_bf16);
    GPTOSS_CHECK_LAUNCH();
  }
  const auto out_bits = d_out.download();
  const auto out = to_float(out_bits);

  opref::AttnRefInput in;
  in.pos = pos;
  in.window = sliding ? kWindow : 0;
  in.scale = kScale;
  in.q = q.data(), in.k = k.data(), in.v = v.data(), in.sinks = sinks.data();
  const auto ref = opref::attention(in);
  // limit = rtol |ref| + accumulation term * sum p|v| / l, folded into one scale.
  std::vector<double> scale(ref.value.size());
  for (size_t i = 0; i < scale.size(); ++i) {
    scale[i] = std::fabs(ref.value[i]) + tol::kAttentionAccumulation / tol::kAttentionRounding.rtol * ref.scale[i];
  }
  const std::string what = "attention pos " + std::to_string(pos) + (sliding ? " sliding" : " full") +
                           (ring ? " ring" : " linear") + " chunks " + std::to_string(num_chunks);
  GPTOSS_REQUIRE_PASS(compare(what.c_str(), out.data(), ref.value.data(), scale.data(), out.size(),
                              tol::kAttentionRounding, [](size_t i) {
                                return "head " + std::to_string(i / kDim) + " (kv " +
                                       std::to_string(i / kDim / dev::kAttnGroup) + ") dim " + std::to_string(i % kDim);
                              }));
  for (uint16_t b : out_bits) REQUIRE(b != kPoisonBf16Bits);
}

}  // namespace

TEST_CASE("attention_decode matches the fp64 reference", "[device_ops][attention]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  SECTION("short contexts around the window, one CTA and split") {
    for (int pos : {0, 1, 126, 127, 128, 129, 1000}) {
      for (bool sliding : {true, false}) {
        for (int chunks : {1, 3}) {
          run_case(pos, sliding, /*ring=*/false, chunks, seed + uint64_t(pos));
          if (sliding) run_case(pos, sliding, /*ring=*/true, chunks, seed + uint64_t(pos));
        }
      }
    }
  }
  SECTION("more chunks than keys (empty chunks merge as nothing)") {
    run_case(5, /*sliding=*/false, /*ring=*/false, /*num_chunks=*/16, seed);
    run_case(130, /*sliding=*/true, /*ring=*/true, /*num_chunks=*/200, seed);
  }
  SECTION("32K context split over many CTAs") {
    run_case(32767, /*sliding=*/false, /*ring=*/false, /*num_chunks=*/64, seed);
    run_case(32767, /*sliding=*/false, /*ring=*/false, /*num_chunks=*/7, seed);
    run_case(32767, /*sliding=*/true, /*ring=*/true, /*num_chunks=*/2, seed);
    run_case(32767, /*sliding=*/true, /*ring=*/false, /*num_chunks=*/1, seed);
  }
}
