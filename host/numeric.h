// numeric.h — host-side scalar formats: BF16, FP8 E4M3, MXFP4 (e2m1 values + e8m0 scales).
// Bit-exact conversions shared by the converter, the CPU reference and the tests. The device
// versions live in device_ops/numeric.cuh and must agree with these bit for bit.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace gptoss {

using bf16_bits = uint16_t;  // raw BF16 storage on the host

inline float bf16_to_float(bf16_bits b) { return std::bit_cast<float>(uint32_t(b) << 16); }

// Round to nearest, ties to even; NaN stays a quiet NaN.
inline bf16_bits float_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_bits((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16_bits(u >> 16);
}

inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

// MXFP4 element values, index = nibble (bit 3 sign, bits 2-1 exponent, bit 0 mantissa).
inline constexpr float kFp4Values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                         -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// E8M0 scale byte -> 2^(s - 127), exact in float for s in [1, 254]; s = 0 gives 2^-127
// (a float subnormal, still exact); 255 is NaN in the OCP MX spec.
inline float e8m0_to_float(uint8_t s) {
  if (s == 255) return std::numeric_limits<float>::quiet_NaN();
  if (s == 0) return std::bit_cast<float>(uint32_t(1) << 22);  // 2^-127
  return std::bit_cast<float>(uint32_t(s) << 23);
}

// One MXFP4 element: row bytes laid out as [K/32 blocks][16 bytes], low nibble = even element.
inline float mxfp4_element(const uint8_t* row_blocks, const uint8_t* row_scales, int k) {
  const uint8_t byte = row_blocks[(k >> 5) * 16 + ((k & 31) >> 1)];
  const uint8_t nib = (k & 1) ? (byte >> 4) : (byte & 0xf);
  return kFp4Values[nib] * e8m0_to_float(row_scales[k >> 5]);
}

// FP8 E4M3 (OCP "fn" variant: no infinities, 0x7f/0xff = NaN, max finite 448).
inline float fp8_e4m3_to_float(uint8_t v) {
  const uint32_t sign = (v >> 7) & 1u, exp = (v >> 3) & 0xfu, man = v & 0x7u;
  float mag;
  if (exp == 0xf && man == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) {
    mag = std::ldexp(float(man), -9);  // subnormal: man/8 * 2^-6
  } else {
    mag = std::ldexp(1.0f + float(man) / 8.0f, int(exp) - 7);
  }
  return sign ? -mag : mag;
}

// Round to nearest even, saturating to +-448 (what __nv_cvt_float_to_fp8 with __NV_SATFINITE does).
inline uint8_t float_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;
  // Search the 127 non-negative finite codes: simple and exact (host-side use only).
  uint8_t best = 0;
  float best_err = a;
  for (uint8_t c = 1; c <= 0x7e; ++c) {
    const float v = fp8_e4m3_to_float(c);
    const float err = std::fabs(v - a);
    if (err < best_err || (err == best_err && (c & 1) == 0 && (best & 1) == 1)) {
      best = c;
      best_err = err;
    }
  }
  return sign | best;
}

}  // namespace gptoss
