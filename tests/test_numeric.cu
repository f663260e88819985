// test_numeric.cu — device number formats (device_ops/numeric.cuh, platform.cuh conversions) bit for
// bit against host/numeric.h, the FP8 block quantizer against the notes/fp8.md rule, and the
// reductions of device_ops/reduce.cuh.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "device_ops/gemv_mxfp4.cuh"
#include "device_ops/numeric.cuh"
#include "device_ops/reduce.cuh"
#include "tests/harness.cuh"
#include "tests/reference/op_ref.h"

namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

constexpr int kThreads = 256;

__global__ void float_to_bf16_test_kernel(uint32_t* out, const float* in, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = dev::float_to_bf16_bits(in[i]);
}
__global__ void bf16_to_float_test_kernel(float* out, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = dev::bf16_bits_to_float(uint32_t(i));
}
__global__ void float_to_e4m3_test_kernel(uint32_t* out, const float* in, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = dev::float_to_e4m3(in[i]);
}
__global__ void small_decoders_test_kernel(float* e4m3, float* e8m0, float* e2m1) {
  const int i = int(threadIdx.x);  // 256 threads
  e4m3[i] = dev::e4m3_to_float(uint32_t(i));
  e8m0[i] = dev::e8m0_to_float(uint32_t(i));
  if (i < 16) e2m1[i] = dev::e2m1_to_float(uint32_t(i));
}
// Every pair of E4M3 codes through the packed decoder the dense FP8 GEMVs use; the upper half of
// the input word is garbage the decoder must ignore.
__global__ void e4m3x2_decoder_test_kernel(float* out) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);  // 65536 threads
  const float2 f = dev::e4m3x2_to_float2(uint32_t(i) | 0xa5c30000u);
  out[2 * i] = f.x;
  out[2 * i + 1] = f.y;
}
// For each (word, scale): the 8 values the bf16 GEMV decoder produces, through the path it picks
// (one multiply for scale <= 128, two otherwise) and through the two-multiply path always.
__global__ void mxfp4_bf16_decoder_test_kernel(float* single_out, float* general_out,
                                               const uint32_t* words, const uint32_t* scales,
                                               int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  const uint4 v = make_uint4(words[i], 0, 0, 0);
  const uint32_t s = scales[i];
  uint32_t pick[4][4], two[4][4];
  dev::detail::decode_block_bf16(pick, v, s, s <= dev::kMxfp4SingleMultiplyMaxScale);
  dev::detail::decode_block_bf16(two, v, s, false);
  for (int p = 0; p < 4; ++p) {
    single_out[i * 8 + p] = dev::bf16x2_lo(pick[0][p]);
    single_out[i * 8 + p + 4] = dev::bf16x2_hi(pick[0][p]);
    general_out[i * 8 + p] = dev::bf16x2_lo(two[0][p]);
    general_out[i * 8 + p + 4] = dev::bf16x2_hi(two[0][p]);
  }
}
__global__ void mxfp4_e4m3_decoder_test_kernel(float* out, const uint32_t* words, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  uint32_t even, odd;
  dev::e2m1x8_to_e4m3x8_scaled(words[i], even, odd);
  for (int j = 0; j < 4; ++j) {
    out[i * 8 + 2 * j] = dev::e4m3_to_float((even >> (8 * j)) & 0xffu) * 64.0f;
    out[i * 8 + 2 * j + 1] = dev::e4m3_to_float((odd >> (8 * j)) & 0xffu) * 64.0f;
  }
}
__global__ void quantize_fp8_test_kernel(uint8_t* codes, uint8_t* scales, const float* x, int k) {
  dev::block_quantize_fp8(codes, scales, x, k);
}
__global__ void reduce_test_kernel(float* out, const float* in) {
  __shared__ float scratch[dev::kMaxWarpsPerBlock];
  const float v = in[threadIdx.x];
  const float ws = dev::warp_sum(v), wm = dev::warp_max(v);
  const float bs = dev::block_sum(v, scratch), bm = dev::block_max(v, scratch);
  // Every thread must agree; thread t writes its own view.
  out[4 * threadIdx.x + 0] = ws;
  out[4 * threadIdx.x + 1] = wm;
  out[4 * threadIdx.x + 2] = bs;
  out[4 * threadIdx.x + 3] = bm;
}

int blocks_for(size_t n) { return int((n + kThreads - 1) / kThreads); }

constexpr size_t kNone = ~size_t(0);
template <class Pred>
size_t first_mismatch(size_t n, Pred&& ok) {
  for (size_t i = 0; i < n; ++i) {
    if (!ok(i)) return i;
  }
  return kNone;
}

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || float_bits(a) == float_bits(b);
}

}  // namespace

TEST_CASE("bf16 conversions match host/numeric.h bit for bit", "[device_ops][numeric]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  // Every upper half with the rounding-critical lower halves (ties, just above/below) and a random one.
  std::vector<float> in;
  for (uint32_t hi = 0; hi < 65536; ++hi) {
    for (uint32_t lo : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu, uint32_t(rng.next() & 0xffff)}) {
      const float f = bits_float((hi << 16) | lo);
      if (!std::isnan(f)) in.push_back(f);
    }
  }
  DeviceBuffer<float> d_in(in);
  DeviceBuffer<uint32_t> d_out(in.size());
  float_to_bf16_test_kernel<<<blocks_for(in.size()), kThreads>>>(d_out.get(), d_in.get(), int(in.size()));
  GPTOSS_CHECK_LAUNCH();
  const auto out = d_out.download();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (out[i] != opref::host_float_to_bf16(in[i]) && bad++ == 0) first = i;
  }
  INFO("first mismatch: input bits 0x" << std::hex << float_bits(in[first]) << " device 0x" << out[first]
                                       << " host 0x" << opref::host_float_to_bf16(in[first]));
  REQUIRE(bad == 0);

  DeviceBuffer<float> d_f(65536);
  bf16_to_float_test_kernel<<<blocks_for(65536), kThreads>>>(d_f.get(), 65536);
  GPTOSS_CHECK_LAUNCH();
  const auto f = d_f.download();
  const size_t bad_bits = first_mismatch(65536, [&](size_t b) { return same_float(f[b], opref::host_bf16_to_float(uint16_t(b))); });
  if (bad_bits != kNone) FAIL("bf16 bits 0x" << std::hex << bad_bits << ": device " << f[bad_bits]);
}

TEST_CASE("the packed e4m3x2 decoder matches host/numeric.h for every pair of codes", "[device_ops][numeric]") {
  DeviceBuffer<float> d_out(2 * 65536);
  e4m3x2_decoder_test_kernel<<<65536 / kThreads, kThreads>>>(d_out.get());
  GPTOSS_CHECK_LAUNCH();
  const auto out = d_out.download();
  const size_t bad = first_mismatch(65536, [&](size_t i) {
    return same_float(out[2 * i], opref::host_fp8_e4m3_to_float(uint8_t(i & 0xffu))) &&
           same_float(out[2 * i + 1], opref::host_fp8_e4m3_to_float(uint8_t(i >> 8)));
  });
  if (bad != kNone) {
    FAIL("codes 0x" << std::hex << bad << ": device " << out[2 * bad] << ", " << out[2 * bad + 1]);
  }
}

TEST_CASE("fp8 e4m3 encode/decode and e8m0/e2m1 decode match host/numeric.h", "[device_ops][numeric]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  std::vector<float> in = {0.0f, -0.0f, 448.0f, -448.0f, 449.0f, 464.0f, 465.0f, 480.0f, 1e30f,
                           std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(), 0x1p-10f, -0x1p-10f, 0x1.8p-10f,
                           0x1p-11f, 1e-30f, -1e-30f, std::numeric_limits<float>::denorm_min()};
  // Every code's value, the midpoints to its neighbour (ties) and one float either side of them.
  for (int c = 0; c < 0x7e; ++c) {
    const float a = opref::host_fp8_e4m3_to_float(uint8_t(c));
    const float b = opref::host_fp8_e4m3_to_float(uint8_t(c + 1));
    const float mid = 0.5f * (a + b);
    for (float sgn : {1.0f, -1.0f}) {
      in.push_back(sgn * a);
      in.push_back(sgn * mid);
      in.push_back(sgn * std::nextafter(mid, 0.0f));
      in.push_back(sgn * std::nextafter(mid, 1e9f));
    }
  }
  for (int i = 0; i < 20000; ++i) in.push_back(float(rng.uniform(-520.0, 520.0)));
  for (int i = 0; i < 20000; ++i) in.push_back(float(rng.uniform(-0.02, 0.02)));
  DeviceBuffer<float> d_in(in);
  DeviceBuffer<uint32_t> d_out(in.size());
  float_to_e4m3_test_kernel<<<blocks_for(in.size()), kThreads>>>(d_out.get(), d_in.get(), int(in.size()));
  GPTOSS_CHECK_LAUNCH();
  const auto out = d_out.download();
  const size_t bad = first_mismatch(in.size(), [&](size_t i) { return out[i] == opref::host_float_to_fp8_e4m3(in[i]); });
  if (bad != kNone) {
    FAIL("input " << in[bad] << " (bits 0x" << std::hex << float_bits(in[bad]) << ") device 0x" << out[bad]
                  << " host 0x" << int(opref::host_float_to_fp8_e4m3(in[bad])));
  }

  DeviceBuffer<float> d_e4m3(256), d_e8m0(256), d_e2m1(16);
  small_decoders_test_kernel<<<1, 256>>>(d_e4m3.get(), d_e8m0.get(), d_e2m1.get());
  GPTOSS_CHECK_LAUNCH();
  const auto e4m3 = d_e4m3.download(), e8m0 = d_e8m0.download(), e2m1 = d_e2m1.download();
  for (int c = 0; c < 256; ++c) {
    INFO("byte " << c);
    REQUIRE(same_float(e4m3[size_t(c)], opref::host_fp8_e4m3_to_float(uint8_t(c))));
    REQUIRE(same_float(e8m0[size_t(c)], opref::host_e8m0_to_float(uint8_t(c))));
    if (c < 16) REQUIRE(same_float(e2m1[size_t(c)], opref::host_fp4_value(uint8_t(c))));
  }
}

TEST_CASE("MXFP4 register decoders are exact for every code and scale", "[device_ops][numeric][mxfp4]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  // Words in which nibble pairs (p, p + 4) run over all 256 combinations, times every scale byte.
  std::vector<uint32_t> words, scales;
  for (uint32_t s = 0; s < 256; ++s) {
    for (uint32_t pair = 0; pair < 256; ++pair) {
      const int p = int(pair + s) & 3;
      uint32_t w = uint32_t(rng.next());
      w &= ~((0xfu << (4 * p)) | (0xfu << (4 * (p + 4))));
      w |= ((pair & 0xfu) << (4 * p)) | ((pair >> 4) << (4 * (p + 4)));
      words.push_back(w);
      scales.push_back(s);
    }
  }
  const int n = int(words.size());
  DeviceBuffer<uint32_t> d_words(words), d_scales(scales);
  DeviceBuffer<float> d_single(size_t(n) * 8), d_general(size_t(n) * 8), d_e4m3(size_t(n) * 8);
  mxfp4_bf16_decoder_test_kernel<<<blocks_for(static_cast<size_t>(n)), kThreads>>>(d_single.get(), d_general.get(),
                                                                       d_words.get(), d_scales.get(), n);
  GPTOSS_CHECK_LAUNCH();
  mxfp4_e4m3_decoder_test_kernel<<<blocks_for(static_cast<size_t>(n)), kThreads>>>(d_e4m3.get(), d_words.get(), n);
  GPTOSS_CHECK_LAUNCH();
  const auto single = d_single.download(), general = d_general.download(), e4m3 = d_e4m3.download();
  // The host's float product is exact up to float overflow (scale >= 253), where bf16 overflows
  // identically; scale 255 is NaN on both sides.
  auto nibble = [&](size_t j) { return uint8_t((words[j / 8] >> (4 * (j % 8))) & 0xf); };
  auto want = [&](size_t j) {
    return opref::host_fp4_value(nibble(j)) * opref::host_e8m0_to_float(uint8_t(scales[j / 8]));
  };
  const size_t bad = first_mismatch(size_t(n) * 8, [&](size_t j) {
    return same_float(single[j], want(j)) && same_float(general[j], want(j)) &&
           same_float(e4m3[j], opref::host_fp4_value(nibble(j)));
  });
  if (bad != kNone) {
    FAIL("word 0x" << std::hex << words[bad / 8] << std::dec << " element " << bad % 8 << " scale "
                   << scales[bad / 8] << ": want " << want(bad) << ", one-multiply path " << single[bad]
                   << ", two-multiply path " << general[bad] << ", e4m3 path " << e4m3[bad] << " (want "
                   << opref::host_fp4_value(nibble(bad)) << ")");
  }
}

TEST_CASE("FP8 block quantization is bit-exact with the notes/fp8.md rule", "[device_ops][numeric][fp8]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  const int k = 2880;  // hidden
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<float> x(static_cast<size_t>(k));
    for (int b = 0; b < k / 32; ++b) {
      // Per block a magnitude from tiny (bf16 subnormals) to huge, some all-zero blocks, -0.0.
      const int kind = rng.below(8);
      const double mag = kind == 0 ? 0.0 : std::ldexp(1.0, rng.below(250) - 130);
      for (int i = 0; i < 32; ++i) {
        float v = round_to_bf16(float(rng.uniform(-mag, mag)));
        if (kind == 1 && i == 7) v = -0.0f;
        if (kind == 2 && i == 3) v = round_to_bf16(float(mag * 1.99));  // amax near the top of its binade
        x[size_t(b * 32 + i)] = v;
      }
    }
    std::vector<uint8_t> want_codes(static_cast<size_t>(k)), want_scales(static_cast<size_t>(k / 32));
    opref::quantize_fp8_blocks(x.data(), k, want_codes.data(), want_scales.data());
    DeviceBuffer<float> d_x(x);
    DeviceBuffer<uint8_t> d_codes(static_cast<size_t>(k)), d_scales(static_cast<size_t>(k / 32));
    d_codes.fill_bytes(kPoisonByte);
    d_scales.fill_bytes(kPoisonByte);
    quantize_fp8_test_kernel<<<1, kThreads>>>(d_codes.get(), d_scales.get(), d_x.get(), k);
    GPTOSS_CHECK_LAUNCH();
    const auto codes = d_codes.download(), scales = d_scales.download();
    const size_t bad_scale = first_mismatch(size_t(k / 32), [&](size_t b) { return scales[b] == want_scales[b]; });
    if (bad_scale != kNone) {
      FAIL("trial " << trial << " block " << bad_scale << ": scale device " << int(scales[bad_scale])
                    << " host " << int(want_scales[bad_scale]));
    }
    const size_t bad = first_mismatch(size_t(k), [&](size_t i) { return codes[i] == want_codes[i]; });
    if (bad != kNone) {
      FAIL("trial " << trial << " index " << bad << " x " << x[bad] << ": code device " << int(codes[bad])
                    << " host " << int(want_codes[bad]) << " (block scale " << int(scales[bad / 32]) << ")");
    }
  }
}

TEST_CASE("warp and block reductions", "[device_ops][reduce]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  Rng rng(seed);
  for (int threads : {32, 64, 96, 256, 1024}) {
    std::vector<float> in(static_cast<size_t>(threads));
    for (auto& v : in) v = float(rng.uniform(-100.0, 100.0));
    in[size_t(rng.below(threads))] = 1000.0f;  // a unique maximum somewhere
    DeviceBuffer<float> d_in(in);
    auto d_out = poisoned_f32(size_t(threads) * 4);
    reduce_test_kernel<<<1, threads>>>(d_out.get(), d_in.get());
    GPTOSS_CHECK_LAUNCH();
    const auto out = d_out.download();
    double bsum = 0.0, babs = 0.0;
    for (float v : in) bsum += v, babs += std::fabs(v);
    for (int t = 0; t < threads; ++t) {
      const int w0 = t / 32 * 32;
      double wsum = 0.0, wabs = 0.0;
      float wmax = -INFINITY;
      for (int i = w0; i < w0 + 32; ++i) {
        wsum += in[size_t(i)], wabs += std::fabs(in[size_t(i)]), wmax = std::max(wmax, in[size_t(i)]);
      }
      INFO("threads " << threads << " thread " << t);
      // FP32 trees of <= 5 + 32 levels: <= 37 u of the sum of magnitudes.
      REQUIRE(std::fabs(out[size_t(4 * t)] - wsum) <= 37 * 0x1p-24 * wabs);
      REQUIRE(out[size_t(4 * t + 1)] == wmax);
      REQUIRE(std::fabs(out[size_t(4 * t + 2)] - bsum) <= 37 * 0x1p-24 * babs);
      REQUIRE(out[size_t(4 * t + 3)] == 1000.0f);
      REQUIRE(float_bits(out[size_t(4 * t + 2)]) == float_bits(out[2]));  // all threads agree
    }
  }
}
