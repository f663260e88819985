// ops.h — the numeric building blocks of the CPU reference forward pass (gptoss::ref): YaRN
// RoPE, RMSNorm, BF16 and MXFP4 row dot products, single-query attention with a sink, router
// top-k, clamped SwiGLU and the FP8 expert-activation quantizer (/work/notes/fp8.md). Scalar
// host code, one call = one output; FP32 math unless a comment says otherwise. The rounding
// points (where a value is stored as BF16) are the callers' (forward.cpp) business.
#pragma once

#include <cstdint>
#include <vector>

#include "host/model_config.h"
#include "host/numeric.h"

namespace gptoss::ref {

inline constexpr float kSwigluAlpha = 1.702f;  // hard-coded in the model code (FACTS.md 1)

// YaRN rotary embedding (FACTS.md 3, step 2.3): pairs (i, i + head_dim/2), frequencies blended
// between extrapolation and interpolation by a linear ramp, concentration C on cos and sin. The
// numbers come from model/rope_yarn.h, the table the GPU engine uploads too.
class YarnRope {
 public:
  explicit YarnRope(const ModelConfig& config);

  int num_pairs() const { return static_cast<int>(omega_.size()); }
  double omega(int i) const { return omega_[static_cast<size_t>(i)]; }  // radians / position
  double concentration() const { return concentration_; }               // C = 0.1 ln(factor) + 1

  // One row of the rotary table for position pos, as the kernel's precomputed table holds it:
  // cos_out[i] = float(C * cos(pos * omega_i)), sin_out[i] = float(C * sin(pos * omega_i)),
  // i < head_dim/2, each evaluated in double and rounded once to float (round to nearest).
  void row(int pos, float* cos_out, float* sin_out) const;

 private:
  std::vector<double> omega_;  // [head_dim/2]
  double concentration_ = 1.0;
};

// Rotates one head in place (FP32): (x_i, x_{i+h}) -> (x_i c - x_{i+h} s, x_{i+h} c + x_i s),
// h = head_dim / 2, with c, s from YarnRope::row (C already folded in).
void apply_rope(float* head, const float* cos, const float* sin, int head_dim);

// out = bf16(x * rsqrt(mean(x^2) + eps) * gain). The mean of squares is accumulated in double
// and the reciprocal root rounded once to float; the products are FP32 ((x * r) * gain, the
// order HF uses), then rounded to BF16 (the kernel stores t as BF16).
void rmsnorm_bf16(bf16_bits* out, const float* x, const bf16_bits* gain, int n, float eps);

// sum_k w_k x_k with FP32 products and 16 FP32 partial sums (lane j takes k = j mod 16) reduced
// pairwise at the end: a fixed order, so the result does not depend on threads or the machine.
float dot_bf16(const bf16_bits* w, const float* x, int n);

// sum_k e4m3(codes[k]) * x[k] in FP32 (16 interleaved partial sums, then a fixed tree, like
// dot_bf16_scalar); the caller multiplies by the row scale (model/fp8_rows.h).
float dot_e4m3(const uint8_t* codes, const float* x, int n);

// One row of a dense weight in either stored format: BF16 (scales == null): dot_bf16(w_row, x);
// E4M3 codes with per-row scales: scales[row] * dot_e4m3(codes_row, x). The QKV, out
// projection and LM head GEMVs all go through it.
float dense_row_dot(const void* weight, const float* scales, size_t row, const float* x, int n);

// sum_k w_k x_k for one MXFP4 row (n % 32 == 0): per 32-block the FP32 sum of fp4 * x (8 partial
// sums, reduced pairwise), times the block's 2^(s - 127), accumulated over blocks in order.
float dot_mxfp4(const uint8_t* row_blocks, const uint8_t* row_scales, const float* x, int n);

// One query head against num_keys keys (FACTS.md 3, step 2.4): l_j = (q . k_j) * scale, the
// sink appended as one more logit (not scaled), softmax over all of them in FP32, and
// out = sum_j p_j v_j (the sink has no value). keys[j] / values[j] point at head_dim BF16s.
void attention_head(float* out, const float* q, const bf16_bits* const* keys,
                    const bf16_bits* const* values, int num_keys, int head_dim, float scale,
                    float sink);

// Router selection (FACTS.md 3, step 2.7): the k largest raw logits, ties to the lowest expert
// index, then a softmax over those k only. Margins let tests tell near-ties from errors.
struct TopK {
  std::vector<int> experts;    // [k] in rank order (largest logit first)
  std::vector<float> weights;  // [k] softmax over the k chosen logits, sums to 1
  float kth_gap = 0;           // logit of rank k-1 minus rank k (4th - 5th); +inf if E == k
  float top2_gap = 0;          // logit of rank 0 minus rank 1; +inf if E == 1
};
// Throws gptoss::Error if a logit is NaN (a broken model, not a tie).
TopK router_topk(const float* logits, int num_experts, int k);

// Clamped SwiGLU of one channel (FACTS.md 3, step 2.8), FP32:
// g = min(gate, limit), u = clamp(up, -limit, limit), g * sigmoid(1.702 g) * (u + 1).
float swiglu(float gate, float up, float limit);

// FP8 expert-activation encoding (/work/notes/fp8.md), per block of 32 values:
// e = clamp(ilogb(amax) - 8, -127, 127), scale byte e + 127, codes = e4m3(x * 2^-e) (RNE,
// saturating to +-448); amax == 0 gives scale byte 0 and zero codes.
int fp8_block_exponent(float amax);  // amax > 0 and finite
// codes [n], scales [n/32], dequant [n] = e4m3_to_float(code) * 2^e (what the GEMV consumes).
void quantize_fp8_blocks(uint8_t* codes, uint8_t* scales, float* dequant, const float* x, int n);

// The portable versions of the dot products; dot_bf16 / dot_mxfp4 dispatch to AVX2 versions
// when the CPU has it, which must agree with these bit for bit (tested).
namespace detail {
float dot_bf16_scalar(const bf16_bits* w, const float* x, int n);
float dot_mxfp4_scalar(const uint8_t* row_blocks, const uint8_t* row_scales, const float* x,
                       int n);
}  // namespace detail

}  // namespace gptoss::ref
