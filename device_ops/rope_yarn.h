// rope_yarn.h — the YaRN rotary frequencies of gpt-oss (FACTS.md 3, step 2.3), host side in FP64:
// per rotated pair i < head_dim/2 the inverse frequency omega_i, the concentration C, and a
// (C cos, C sin) table. The device (rope.cuh) takes them as FP32 arrays. Plain C++, no GPU headers.
// Fill YarnParams from ModelConfig: head_dim, rope_theta, rope_scaling_factor, rope_ntk_beta
// (beta_fast), rope_ntk_alpha (beta_slow), initial_context_length.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace gptoss {

struct YarnParams {
  int head_dim = 64;
  double theta = 150000.0;
  double factor = 32.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int initial_context = 4096;
};

// C = 0.1 ln(factor) + 1, multiplied into both cos and sin.
inline double yarn_concentration(const YarnParams& p) { return 0.1 * std::log(p.factor) + 1.0; }

// The pair index at which the wavelength equals initial_context / num_rotations (not truncated).
inline double yarn_correction_dim(const YarnParams& p, double num_rotations) {
  const double pi = 3.14159265358979323846;
  return p.head_dim * std::log(p.initial_context / (num_rotations * 2.0 * pi)) /
         (2.0 * std::log(p.theta));
}

// omega_i = (1/f_i)(1 - ramp_i) + (1/(factor f_i)) ramp_i, f_i = theta^(2i/head_dim),
// ramp_i = clamp((i - low) / (high - low), 0, 1), low from beta_fast, high from beta_slow.
inline std::vector<double> yarn_inv_freq(const YarnParams& p) {
  const int half = p.head_dim / 2;
  const double low = std::max(0.0, yarn_correction_dim(p, p.beta_fast));
  double high = std::min(double(p.head_dim - 1), yarn_correction_dim(p, p.beta_slow));
  if (high == low) high += 0.001;
  std::vector<double> omega(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    const double f = std::pow(p.theta, 2.0 * i / p.head_dim);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    omega[size_t(i)] = (1.0 / f) * (1.0 - ramp) + (1.0 / (p.factor * f)) * ramp;
  }
  return omega;
}

// The FP32 inverse frequencies the device computes angles from (rope.cuh, computed mode).
inline std::vector<float> yarn_inv_freq_f32(const YarnParams& p) {
  const std::vector<double> w = yarn_inv_freq(p);
  return std::vector<float>(w.begin(), w.end());
}

// [num_positions][head_dim/2][2] = (C cos(pos omega_i), C sin(pos omega_i)), angles and functions
// in FP64, rounded once to FP32 (rope.cuh, table mode). Note that the HF and OpenAI references
// form the angle as FP32 pos * FP32 omega, which is off by up to ~0.5 ulp of the angle (about
// 4e-3 rad at pos 131071); the computed mode reproduces that, this table does not.
inline std::vector<float> yarn_cos_sin_table(const YarnParams& p, int num_positions) {
  const std::vector<double> w = yarn_inv_freq(p);
  const double c = yarn_concentration(p);
  const size_t half = w.size();
  std::vector<float> t(size_t(num_positions) * half * 2);
  for (int pos = 0; pos < num_positions; ++pos) {
    for (size_t i = 0; i < half; ++i) {
      const double a = double(pos) * w[i];
      t[(size_t(pos) * half + i) * 2] = float(c * std::cos(a));
      t[(size_t(pos) * half + i) * 2 + 1] = float(c * std::sin(a));
    }
  }
  return t;
}

}  // namespace gptoss
