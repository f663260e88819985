// fp8_rows.h — FP8 weights with one scale per output row (the attention projections and the LM
// head in an archive converted with --attn fp8 / --lm-head fp8; docs/ARCHIVE.md): the one
// quantization rule, shared by the converter (host), the CPU --synthetic model and the GPU
// --synthetic generator (host/runtime/synth_gpu.cu), so all three give the same bytes.
//
//   amax  = max |w_k| over the row (BF16 values, exact)
//   scale = amax / 448 (FP32, correctly rounded; 0 for an all-zero row)
//   code  = E4M3(w_k / scale): FP32 division, round to nearest even, saturating to +-448
//           (w_k / scale can round just above 448), never NaN for finite w_k
//
// Readers compute y_r = scale_r * sum_k e4m3(code_rk) * x_k with FP32 accumulation: the scale
// is applied once per row, after the sum (the CPU reference and the megakernel alike).
// C++17, no exceptions, no libm: safe for nvcc/hipcc device code (GPTOSS_HD).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define GPTOSS_FP8_HD __host__ __device__
#else
#define GPTOSS_FP8_HD
#endif

namespace gptoss::fp8 {

inline constexpr float kE4m3Max = 448.0f;
inline constexpr uint8_t kE4m3MaxCode = 0x7e;  // +448
inline constexpr uint8_t kE4m3NaN = 0x7f;

GPTOSS_FP8_HD inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

// FP32 -> E4M3 (OCP "fn": no infinities, max 448), round to nearest even, saturating to +-448;
// NaN -> 0x7f. Integer-only, so host and device agree bit for bit (tests/test_fp8_rows.cpp checks
// it against host/numeric.h's exhaustive-search float_to_fp8_e4m3).
GPTOSS_FP8_HD inline uint8_t e4m3_from_float(float f) {
  const uint32_t u = float_bits(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint8_t(sign | kE4m3NaN);
  if (a >= 0x43e00000u) return uint8_t(sign | kE4m3MaxCode);  // >= 448 (and infinity)
  const uint32_t e = a >> 23;                                  // biased FP32 exponent
  if (e < 121u) {
    // Below 2^-6: E4M3 subnormals, multiples of 2^-9. value * 2^9 = m24 * 2^(e - 141).
    if (e < 117u) return sign;  // < 2^-10: rounds to zero (FP32 subnormals included)
    const uint32_t m24 = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 141u - e;  // 21..24
    uint32_t r = m24 >> shift;
    const uint32_t rem = m24 & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return uint8_t(sign | r);  // r = 8 is 2^-6, the smallest normal's code
  }
  // Normal: keep 3 mantissa bits, round to nearest even; the carry may bump the exponent.
  const uint32_t r = (a + 0x7ffffu + ((a >> 20) & 1u)) >> 20;  // (e << 3 | m3) after rounding
  uint32_t code = r - (120u << 3);
  if (code > kE4m3MaxCode) code = kE4m3MaxCode;
  return uint8_t(sign | code);
}

// E4M3 code -> FP32 (exact; 0x7f/0xff -> NaN).
GPTOSS_FP8_HD inline float e4m3_to_float(uint8_t c) {
  if ((c & 0x7fu) == 0x7fu) {
    const uint32_t nan = 0x7fc00000u;
    float f;
    memcpy(&f, &nan, sizeof(f));
    return f;
  }
  // The 7 magnitude bits as FP32 exponent/mantissa bits give value * 2^-120, subnormals included.
  const uint32_t bits = (uint32_t(c & 0x80u) << 24) | (uint32_t(c & 0x7fu) << 20);
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f * 1.329227995784916e36f;  // 2^120, exact
}

// The row scale for a row whose largest magnitude is amax (finite, >= 0).
GPTOSS_FP8_HD inline float row_scale(float amax) { return amax > 0.0f ? amax / kE4m3Max : 0.0f; }

// One element's code given its row's scale (0 for an all-zero row: every code is 0).
GPTOSS_FP8_HD inline uint8_t quantize(float w, float scale) {
  return scale > 0.0f ? e4m3_from_float(w / scale) : uint8_t(0);
}

// |BF16 bits| as a float (the row maximum's input).
GPTOSS_FP8_HD inline float bf16_abs(uint16_t b) {
  const uint32_t bits = uint32_t(b & 0x7fffu) << 16;
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}
GPTOSS_FP8_HD inline float bf16_value(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace gptoss::fp8
