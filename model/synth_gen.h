// synth_gen.h — the synthetic-weight generator: every stored value (BF16 bits, MXFP4 block byte,
// E8M0 scale byte) is a pure function of (seed, layer, tensor kind, index in the CANONICAL tensor).
// Integer-only (a counter-based splitmix64 hash; no floats, no libm, no std distributions), so the
// host writer (converter/synth.cpp) and a GPU kernel (GPTOSS_HD = __host__ __device__) produce the
// same bits. C++17, no exceptions, no tables: safe for nvcc/hipcc device code.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GPTOSS_HD __host__ __device__
#else
#define GPTOSS_HD
#endif

namespace gptoss::conv {

// One kind per canonical tensor (host/tensor_spec.h), same order. The numeric values are part of
// the generated bits: never renumber them.
enum class SynthKind : uint32_t {
  kEmbed = 1,
  kAttnNorm = 2,
  kQkvWeight = 3,
  kQkvBias = 4,
  kSinks = 5,
  kOutWeight = 6,
  kOutBias = 7,
  kMlpNorm = 8,
  kRouterWeight = 9,
  kRouterBias = 10,
  kMlp1Blocks = 11,
  kMlp1Scales = 12,
  kMlp1Bias = 13,
  kMlp2Blocks = 14,
  kMlp2Scales = 15,
  kMlp2Bias = 16,
  kFinalNorm = 17,
  kLmHead = 18,
};

// ---- magnitudes (why these) ---------------------------------------------------------------------
// A BF16 weight is s * 2^-shift with s an Irwin-Hall sum of four 16-bit uniforms (centred,
// std 2^15.2, bounded at 3.46 sigma), so rms = 1.15 * 2^(15 - shift).
//  - Linear weights (qkv, out): rms ~ 2^-ceil(log2(fan_in)/2) ~ 1/sqrt(fan_in), so each projection
//    of an RMS-normalised input stays O(1) and the residual grows slowly through any depth.
//  - Router and LM head: 4x that (rms ~ 4/sqrt(hidden)), so logits are not flat: token logits
//    have std ~4 (top-1 ~17 over 201088 rows) and router logits std ~3-4, which makes the top-4
//    softmax decisive. Margins relative to rounding noise do not change with this scale (both
//    scale together); with Gaussian-like logits the top-1/top-2 gap averages ~0.2 std and a
//    near-tie (gap < e std) happens at a rate of about 5e per step, which tests must expect.
//  - Embedding rms ~1: the residual starts at the scale the layer outputs add to it.
//  - Norm gains in [0.875, 1.117] (near 1); biases rms ~0.036; sinks rms ~0.29: small.
//  - MXFP4: nibble magnitudes follow a rounded |N(0, 1.6)| over the E2M1 grid (6.0 in 1/64 of
//    the elements, as in real blocks whose max maps near 6), random sign; scale bytes are
//    127 - ceil(log2(fan_in)/2) - 1 + {-1, 0, 0, +1}, e.g. 119..121 for fan-in 2880, so the
//    dequantised rms is ~0.9/sqrt(fan_in) with realistic per-block variation.
// Measured with the CPU reference on `tiny`, seed 1, 12 greedy steps from token 200006: residual
// rms 1.15 -> 1.95 over 4 layers (attention adds ~0.6, MoE ~0.4-0.6 rms per layer), top-1 logit
// ~17, top-1 minus top-2 logit mean 0.82 (min 0.16), router 4th-minus-5th gap mean 1.16 (2 of 48
// below 0.05), top expert weight 0.57-0.96.

GPTOSS_HD inline uint64_t synth_mix64(uint64_t z) {  // splitmix64 finalizer
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ull;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebull;
  z ^= z >> 31;
  return z;
}

// The per-tensor key: all values of one canonical tensor derive from it and their index.
GPTOSS_HD inline uint64_t synth_tensor_key(uint64_t seed, uint32_t layer, SynthKind kind) {
  const uint64_t id = (static_cast<uint64_t>(kind) << 32) | layer;
  return synth_mix64(synth_mix64(seed ^ 0x6770742d6f737321ull) + id * 0x9e3779b97f4a7c15ull);
}

// The counter hash: splitmix64 of the key plus a Weyl step per index.
GPTOSS_HD inline uint64_t synth_hash(uint64_t key, uint64_t counter) {
  return synth_mix64(key + (counter + 1) * 0x9e3779b97f4a7c15ull);
}

GPTOSS_HD inline int synth_floor_log2(uint32_t x) {  // x > 0
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return 31 - __clz(static_cast<int>(x));
#else
  return 31 - __builtin_clz(x);
#endif
}

// ceil(log2(fan_in) / 2) computed as (floor_log2 + 1) / 2: 6 for 2880 and 4096.
GPTOSS_HD inline int synth_half_log2(uint32_t fan_in) {
  return (synth_floor_log2(fan_in > 0 ? fan_in : 1) + 1) / 2;
}

// BF16 bits of s * 2^-shift, round to nearest even (|s| < 2^24, result a normal number).
// Branch-free rounding: the hot loop of the host writer runs this once per BF16 weight.
GPTOSS_HD inline uint16_t synth_bf16_from_int(int32_t s, int shift) {
  if (s == 0) return 0;
  const uint32_t sign = s < 0 ? 0x8000u : 0u;
  const uint32_t a = s < 0 ? static_cast<uint32_t>(-s) : static_cast<uint32_t>(s);
  int p = synth_floor_log2(a);
  uint32_t m;
  if (p <= 7) {
    m = a << (7 - p);
  } else {
    const int drop = p - 7;
    const uint32_t lsb = (a >> drop) & 1u;
    m = (a + ((1u << (drop - 1)) - 1u) + lsb) >> drop;  // 256 when rounding carries out
    p += static_cast<int>(m >> 8);                      // then 1.0 x 2^(p+1): mantissa bits 0
  }
  const uint32_t exp = static_cast<uint32_t>(p - shift + 127);
  return static_cast<uint16_t>(sign | (exp << 7) | (m & 0x7fu));
}

// The right shift per BF16 kind (see "magnitudes"); norms are handled separately.
// fan_in = the contraction length of the tensor's matmul (hidden for qkv/router/lm_head, q width
// for out); unused for the other kinds.
GPTOSS_HD inline int synth_bf16_shift(SynthKind kind, uint32_t fan_in) {
  switch (kind) {
    case SynthKind::kEmbed:
      return 15;
    case SynthKind::kQkvWeight:
    case SynthKind::kOutWeight:
      return 15 + synth_half_log2(fan_in);
    case SynthKind::kRouterWeight:
    case SynthKind::kLmHead:
      return 13 + synth_half_log2(fan_in);
    case SynthKind::kSinks:
      return 17;
    default:
      return 20;  // biases
  }
}

GPTOSS_HD inline bool synth_is_norm(SynthKind kind) {
  return kind == SynthKind::kAttnNorm || kind == SynthKind::kMlpNorm ||
         kind == SynthKind::kFinalNorm;
}

// BF16 bits of element `elem` of a BF16 tensor; `shift` = synth_bf16_shift(kind, fan_in).
GPTOSS_HD inline uint16_t synth_bf16_value(uint64_t key, bool is_norm, int shift, uint64_t elem) {
  const uint64_t h = synth_hash(key, elem);
  if (is_norm) {
    // r uniform in [0, 48): 32 values in [0.875, 1) (0x3f60..0x3f7f), 16 in [1, 1.117].
    const uint32_t r = static_cast<uint32_t>(((h >> 32) * 48u) >> 32);
    return static_cast<uint16_t>(r < 32u ? 0x3f60u + r : 0x3f80u + (r - 32u));
  }
  const int32_t s = static_cast<int32_t>((h & 0xffffu) + ((h >> 16) & 0xffffu) +
                                         ((h >> 32) & 0xffffu) + (h >> 48)) -
                    2 * 0xffff;
  return synth_bf16_from_int(s, shift);
}

// One E2M1 nibble from 7 random bits: bit 6 = sign, bits 0-5 = magnitude via the cumulative
// thresholds of a rounded |N(0, 1.6)| (codes 0..7 = 0, .5, 1, 1.5, 2, 3, 4, 6).
GPTOSS_HD inline uint32_t synth_fp4_nibble(uint32_t bits) {
  const uint32_t x = bits & 63u;
  const uint32_t mag =
      (x >= 8u) + (x >= 23u) + (x >= 36u) + (x >= 46u) + (x >= 56u) + (x >= 62u) + (x >= 63u);
  return ((bits >> 6) & 1u) << 3 | mag;
}

// Byte `byte_idx` of an MXFP4 blocks tensor (two nibbles, low = even element). Four bytes share
// one hash; each byte uses its own 16 bits.
GPTOSS_HD inline uint8_t synth_block_byte(uint64_t key, uint64_t byte_idx) {
  const uint64_t h = synth_hash(key, byte_idx >> 2);
  const uint32_t bits = static_cast<uint32_t>(h >> ((byte_idx & 3u) * 16u)) & 0xffffu;
  return static_cast<uint8_t>(synth_fp4_nibble(bits) | (synth_fp4_nibble(bits >> 8) << 4));
}

// The centre scale byte for an MXFP4 matrix with contraction length fan_in (120 for 2880).
GPTOSS_HD inline uint32_t synth_scale_base(uint32_t fan_in) {
  return 127u - static_cast<uint32_t>(synth_half_log2(fan_in)) - 1u;
}

// Byte `idx` of an E8M0 scales tensor: base + {-1, 0, 0, +1}. Eight scales share one hash.
GPTOSS_HD inline uint8_t synth_scale_byte(uint64_t key, uint32_t base, uint64_t idx) {
  const uint64_t h = synth_hash(key, idx >> 3);
  const uint32_t r = static_cast<uint32_t>(h >> ((idx & 7u) * 8u)) & 3u;
  return static_cast<uint8_t>(base + (r == 3u ? 1u : 0u) - (r == 0u ? 1u : 0u));
}

}  // namespace gptoss::conv
