// rope_yarn.h — the YaRN rotary table of gpt-oss (FACTS.md 3, step 2.3), the one definition shared
// by the GPU engine (host/runtime/, which uploads the table the kernel reads), the CPU reference
// (host/reference/) and the tests. FP64 math, rounded once to FP32. Plain C++17, no host or GPU
// headers: device code may include it. Rules as in HF transformers' YaRN: correction dims not
// truncated, concentration C = 0.1 ln(factor) + 1 when factor > 1 (else 1), folded into cos and sin.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace gptoss {

// From ModelConfig: head_dim, rope_theta, rope_scaling_factor, rope_ntk_beta (beta_fast),
// rope_ntk_alpha (beta_slow), initial_context_length. The defaults are gpt-oss's.
struct YarnParams {
  int head_dim = 64;
  double theta = 150000.0;
  double factor = 32.0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  int initial_context = 4096;
};

// C, multiplied into both cos and sin.
inline double yarn_concentration(const YarnParams& p) {
  return p.factor > 1.0 ? 0.1 * std::log(p.factor) + 1.0 : 1.0;
}

// The pair index at which the wavelength fits num_rotations times into the original context
// (HF find_correction_dim; not rounded: the checkpoints say truncate: false).
inline double yarn_correction_dim(const YarnParams& p, double num_rotations) {
  const double pi = 3.14159265358979323846;
  return p.head_dim * std::log(p.initial_context / (num_rotations * 2.0 * pi)) /
         (2.0 * std::log(p.theta));
}

// omega_i = inv_freq_i / factor * ramp_i + inv_freq_i * (1 - ramp_i), inv_freq_i =
// theta^(-2i/head_dim), ramp_i = clamp((i - low) / (high - low), 0, 1), low from beta_fast, high
// from beta_slow; one entry per rotated pair i < head_dim / 2.
inline std::vector<double> yarn_inv_freq(const YarnParams& p) {
  const int half = p.head_dim / 2;
  const double low = std::max(yarn_correction_dim(p, p.beta_fast), 0.0);
  double high = std::min(yarn_correction_dim(p, p.beta_slow), double(p.head_dim - 1));
  if (high == low) high += 0.001;  // as HF, to avoid a division by zero
  std::vector<double> omega(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    const double inv_freq = 1.0 / std::pow(p.theta, 2.0 * i / p.head_dim);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    omega[size_t(i)] = inv_freq / p.factor * ramp + inv_freq * (1.0 - ramp);
  }
  return omega;
}

// The FP32 inverse frequencies the device computes angles from (rope.cuh, computed mode).
inline std::vector<float> yarn_inv_freq_f32(const YarnParams& p) {
  const std::vector<double> w = yarn_inv_freq(p);
  return std::vector<float>(w.begin(), w.end());
}

// One position's row: cos_out[i] = C cos(pos omega_i), sin_out[i] = C sin(pos omega_i), angle and
// functions in FP64, rounded once to FP32. Note that the HF and OpenAI references form the angle
// as FP32 pos * FP32 omega, off by up to ~0.5 ulp of the angle (about 4e-3 rad at pos 131071);
// rope.cuh's computed mode reproduces that, this table does not.
inline void yarn_row(const std::vector<double>& omega, double concentration, int pos,
                     float* cos_out, float* sin_out) {
  for (size_t i = 0; i < omega.size(); ++i) {
    const double angle = static_cast<double>(pos) * omega[i];
    cos_out[i] = static_cast<float>(concentration * std::cos(angle));
    sin_out[i] = static_cast<float>(concentration * std::sin(angle));
  }
}

// [num_positions][head_dim]: per position head_dim/2 C cos values, then head_dim/2 C sin values
// (the layout of MegakernelArgs::rope_table).
inline std::vector<float> yarn_rope_table(const YarnParams& p, int num_positions) {
  const std::vector<double> w = yarn_inv_freq(p);
  const double c = yarn_concentration(p);
  const size_t half = w.size();
  std::vector<float> t(size_t(num_positions) * half * 2);
  for (int pos = 0; pos < num_positions; ++pos) {
    float* row = t.data() + size_t(pos) * half * 2;
    yarn_row(w, c, pos, row, row + half);
  }
  return t;
}

// [num_positions][head_dim/2][2] = (C cos, C sin) pairs (rope.cuh, table mode).
inline std::vector<float> yarn_cos_sin_table(const YarnParams& p, int num_positions) {
  const std::vector<double> w = yarn_inv_freq(p);
  const double c = yarn_concentration(p);
  const size_t half = w.size();
  std::vector<float> t(size_t(num_positions) * half * 2);
  std::vector<float> cos_row(half), sin_row(half);
  for (int pos = 0; pos < num_positions; ++pos) {
    yarn_row(w, c, pos, cos_row.data(), sin_row.data());
    for (size_t i = 0; i < half; ++i) {
      t[(size_t(pos) * half + i) * 2] = cos_row[i];
      t[(size_t(pos) * half + i) * 2 + 1] = sin_row[i];
    }
  }
  return t;
}

}  // namespace gptoss
