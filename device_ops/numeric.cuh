// numeric.cuh — number formats in registers, thread scope: BF16 pack/unpack, FP8 E4M3 and the
// per-32 block-scale rule of notes/fp8.md, MXFP4 (e2m1 values, e8m0 scales) decoders for the
// GEMVs. Every decoder is exact; all agree bit for bit with host/numeric.h for finite values and
// infinities (checked by tests/test_numeric.cu); NaN payloads are not preserved.
// No vendor names here: the conversion instructions come from platform.cuh.
#pragma once

#include "device_ops/platform.cuh"

namespace gptoss::dev {

inline constexpr int kMxfp4BlockElems = 32;  // values per e8m0 scale (OCP MX block)
inline constexpr int kMxfp4BlockBytes = 16;  // two e2m1 values per byte
inline constexpr int kE4m3MaxExponent = 8;   // largest finite E4M3 is 1.75 * 2^8 = 448
static_assert(kMxfp4BlockElems == 2 * kMxfp4BlockBytes, "two e2m1 nibbles per byte");

// ---- BF16 ----------------------------------------------------------------------------------------
__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits16) {
  return __uint_as_float(bits16 << 16);
}
__device__ __forceinline__ float bf16x2_lo(uint32_t pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float bf16x2_hi(uint32_t pair) {
  return __uint_as_float(pair & 0xffff0000u);
}
__device__ __forceinline__ float bf16_to_float(bf16 v) {
  return bf16_bits_to_float(*reinterpret_cast<const uint16_t*>(&v));
}
// Round to nearest even (NaN -> 0x7fff).
__device__ __forceinline__ uint32_t float_to_bf16_bits(float f) {
  return pack_bf16x2_rn(f, 0.0f) & 0xffffu;
}
__device__ __forceinline__ bf16 float_to_bf16(float f) {
  const uint16_t b = uint16_t(float_to_bf16_bits(f));
  return *reinterpret_cast<const bf16*>(&b);
}
__device__ __forceinline__ float round_to_bf16(float f) {
  return bf16_bits_to_float(float_to_bf16_bits(f));
}
// Eight consecutive bf16 (one 16-byte load) -> floats.
__device__ __forceinline__ void bf16x8_to_float(const uint4& v, float (&out)[8]) {
  out[0] = bf16x2_lo(v.x), out[1] = bf16x2_hi(v.x), out[2] = bf16x2_lo(v.y);
  out[3] = bf16x2_hi(v.y), out[4] = bf16x2_lo(v.z), out[5] = bf16x2_hi(v.z);
  out[6] = bf16x2_lo(v.w), out[7] = bf16x2_hi(v.w);
}

// ---- E8M0 scales ---------------------------------------------------------------------------------
// 2^(s-127) as a float: s in [1, 254] normal, s = 0 the subnormal 2^-127, s = 255 NaN (OCP MX).
__device__ __forceinline__ float e8m0_to_float(uint32_t s) {
  return s == 0 ? __uint_as_float(0x00400000u)
                : (s == 255 ? __uint_as_float(0x7fc00000u) : __uint_as_float(s << 23));
}
// The same value as bf16 in both halves of a bf16x2 (0 -> subnormal 0x0040, 255 -> NaN 0x7fc0).
__device__ __forceinline__ uint32_t e8m0_to_bf16x2(uint32_t s) {
  const uint32_t b = s == 0 ? 0x0040u : (s == 255 ? 0x7fc0u : s << 7);
  return b * 0x00010001u;
}

// ---- MXFP4 e2m1 ----------------------------------------------------------------------------------
// One e2m1 code (bit 3 sign, bits 2-1 exponent with bias 1, bit 0 mantissa) as a float.
__device__ __forceinline__ float e2m1_to_float(uint32_t nibble) {
  const uint32_t e = (nibble >> 1) & 3u, m = nibble & 1u;
  const float mag = e == 0 ? 0.5f * float(m) : __uint_as_float((e + 126u) << 23) * (1.0f + 0.5f * m);
  return (nibble & 8u) ? -mag : mag;
}

// Elements P and P + 4 of the eight e2m1 codes in w (element i is nibble i, bits 4i..4i+3) as a
// bf16x2 (element P in the low half) of value e2m1 * 2^-126. Moving the code's exponent and
// mantissa bits into the bf16 exponent LSBs and mantissa MSB is exact for all 16 codes: code 1
// (0.5) becomes the bf16 subnormal 2^-127. Three integer ops (two for P = 3).
template <int P>
__device__ __forceinline__ uint32_t e2m1_pair_to_bf16x2_scaled(uint32_t w) {
  static_assert(P >= 0 && P < 4, "four pairs per 32-bit word");
  constexpr int kMagShift = 6 - 4 * P;    // nibble bits 4P..4P+2 -> bf16 bits 6..8 (and 22..24)
  constexpr int kSignShift = 12 - 4 * P;  // nibble bit 4P+3 -> bf16 bit 15 (and 31)
  uint32_t mag;
  if constexpr (kMagShift >= 0) {
    mag = w << kMagShift;
  } else {
    mag = w >> -kMagShift;
  }
  return (mag & 0x01c001c0u) | ((w << kSignShift) & 0x80008000u);
}
// 2^-126 (the decoder's offset) and 2^126 as bf16x2.
inline constexpr uint32_t kBf16x2TwoPow126 = 0x7e807e80u;
// One bf16 multiply by 2^(s-1) turns e2m1 * 2^-126 into the dequantized e2m1 * 2^(s-127) while
// 2^(s-1) is a bf16 normal, i.e. for s <= kMxfp4SingleMultiplyMaxScale.
inline constexpr uint32_t kMxfp4SingleMultiplyMaxScale = 128;
__device__ __forceinline__ uint32_t mxfp4_single_multiplier_bf16x2(uint32_t s) {
  return ((s + 126u) << 7) * 0x00010001u;
}

// The eight e2m1 codes of w as E4M3 bytes of value e2m1 * 2^-6 (exact for all codes; 0.5 becomes
// the E4M3 subnormal 2^-7). even = elements 0, 2, 4, 6 in bytes 0..3; odd = elements 1, 3, 5, 7.
__device__ __forceinline__ void e2m1x8_to_e4m3x8_scaled(uint32_t w, uint32_t& even, uint32_t& odd) {
  even = ((w << 2) & 0x1c1c1c1cu) | ((w << 4) & 0x80808080u);
  odd = ((w >> 2) & 0x1c1c1c1cu) | (w & 0x80808080u);
}
inline constexpr int kE2m1ToE4m3Exponent = -6;  // e4m3 value = e2m1 value * 2^-6

// ---- FP8 E4M3 activations with per-32 E8M0 block scales (notes/fp8.md) -------------------------
// The block exponent e for a block whose largest magnitude is amax > 0:
// e = clamp(ilogb(amax) - 8, -127, 127); the scale byte is e + 127 and codes are E4M3(x * 2^-e).
// amax is at most 2^128 (a float), so e <= 119 and 2^-e is a normal float.
__device__ __forceinline__ int fp8_block_exponent(float amax) {
  const int e = ilogbf(amax) - kE4m3MaxExponent;
  return e < -127 ? -127 : (e > 127 ? 127 : e);
}
// 2^-e as a float, exact for e in [-127, 126].
__device__ __forceinline__ float exp2_neg_int(int e) { return __uint_as_float(uint32_t(127 - e) << 23); }

// ---- FP8 E4M3 weights with per-row FP32 scales (model/fp8_rows.h) ------------------------------
}  // namespace gptoss::dev
