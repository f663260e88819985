// rng.h — the counter-based random numbers of the samplers: a pure function of (seed, draw,
// index), so a sampled token depends only on the seed, which draw of the run it is, and the
// logits, never on thread scheduling; the GPU sampler (host/runtime/sample_gpu.cu) computes the
// same numbers. Header-only, plain C++17, host and device.
#pragma once

#include <math.h>

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GPTOSS_SAMPLING_HD __host__ __device__
#else
#define GPTOSS_SAMPLING_HD
#endif

namespace gptoss::sampling {

// splitmix64's finaliser (Steele, Lea, Flood 2014): a bijection on 64 bits with full avalanche.
GPTOSS_SAMPLING_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// 64 random bits for vocabulary entry `index` of draw `draw` under `seed`. Two rounds, each
// keyed by one more input, so streams of neighbouring seeds or draws do not overlap.
GPTOSS_SAMPLING_HD inline uint64_t counter_bits(uint64_t seed, uint64_t draw, uint64_t index) {
  const uint64_t s = mix64(seed + 0x9e3779b97f4a7c15ull * (draw + 1));
  return mix64(s ^ (index * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
}

// Uniform in the open interval (0, 1): 53 random bits centred in their cell.
GPTOSS_SAMPLING_HD inline double counter_uniform(uint64_t seed, uint64_t draw, uint64_t index) {
  return (double(counter_bits(seed, draw, index) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Standard Gumbel noise -log(-log(u)): argmax_i (z_i + g_i) is an exact sample from softmax(z).
GPTOSS_SAMPLING_HD inline double gumbel_noise(uint64_t seed, uint64_t draw, uint64_t index) {
  return -::log(-::log(counter_uniform(seed, draw, index)));
}

}  // namespace gptoss::sampling
