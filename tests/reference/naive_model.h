// naive_model.h — an independent, naive FP64 gpt-oss forward pass written from FACTS.md section 3,
// for tests of the CPU reference (host/reference): one position at a time, every value in double,
// optionally rounded to BF16 at the reference's storage points, optionally teacher-forced phase by
// phase from a Reference's buffers. Slow on purpose (no tables, no SIMD, element-wise MXFP4);
// header-only, namespace gptoss::naive.
#pragma once

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <vector>

#include "host/numeric.h"
#include "host/reference/forward.h"
#include "host/weights_view.h"

namespace gptoss::naive {

struct NaiveLayer {
  std::vector<double> t_attn, qkv, attn, x_attn, t_mlp, router_logits, expert_in, swiglu, x_out;
  std::vector<int> experts;
  double kth_gap = 0;
};

class NaiveModel {
 public:
  // round_bf16: round where DESIGN.md section 6 stores BF16 (t, q/k/v, attention output, SwiGLU
  // output, final t); otherwise everything stays FP64. fp8: quantize the expert input.
  NaiveModel(const ModelWeights& w, bool round_bf16, bool fp8)
      : w_(w), c_(w.config), round_(round_bf16), fp8_(fp8) {
    k_.resize(static_cast<size_t>(c_.num_layers));
    v_.resize(static_cast<size_t>(c_.num_layers));
    layers_.resize(static_cast<size_t>(c_.num_layers));
  }

  // Runs `token` at the next position; with `tf` (a Reference that has just run the same
  // token) teacher-forced phase by phase, see layer().
  std::vector<double> step(int token, const ref::Reference* tf = nullptr) {
    const int H = c_.hidden;
    std::vector<double> x(static_cast<size_t>(H));
    for (int i = 0; i < H; ++i) x[i] = bf16_to_float(w_.embed[static_cast<size_t>(token) * H + i]);
    for (int l = 0; l < c_.num_layers; ++l) x = layer(l, x, tf ? &tf->layer(l) : nullptr);
    if (tf) x = to_double(tf->layer(c_.num_layers - 1).x_out);
    final_t_ = rmsnorm(x, w_.final_norm);
    const std::vector<double> t = tf ? to_double(tf->final_t()) : final_t_;
    std::vector<double> logits(static_cast<size_t>(c_.vocab_size));
    for (int v = 0; v < c_.vocab_size; ++v) logits[v] = matvec_row(static_cast<const bf16_bits*>(w_.lm_head), v, H, t);
    ++pos_;
    return logits;
  }

  const NaiveLayer& layer_out(int l) const { return layers_[static_cast<size_t>(l)]; }
  const std::vector<double>& final_t() const { return final_t_; }

 private:
  double r(double v) const { return round_ ? double(round_to_bf16(static_cast<float>(v))) : v; }

  static double matvec_row(const bf16_bits* m, int row, int cols, const std::vector<double>& x) {
    double s = 0;
    for (int k = 0; k < cols; ++k) s += double(bf16_to_float(m[size_t(row) * cols + k])) * x[k];
    return s;
  }

  std::vector<double> rmsnorm(const std::vector<double>& x, const bf16_bits* gain) const {
    double ms = 0;
    for (double v : x) ms += v * v;
    ms /= double(x.size());
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      out[i] = r(x[i] / std::sqrt(ms + double(c_.rms_norm_eps)) * bf16_to_float(gain[i]));
    }
    return out;
  }

  // FACTS.md 3, step 2.3, written out from the formulas (not from the reference's YarnRope).
  void rope(double* head, int pos) const {
    const int d = c_.head_dim, half = d / 2;
    const double two_pi = 2 * std::numbers::pi;
    const double low = d * std::log(c_.initial_context_length / (c_.rope_ntk_beta * two_pi)) /
                       (2 * std::log(c_.rope_theta));
    const double high = d * std::log(c_.initial_context_length / (c_.rope_ntk_alpha * two_pi)) /
                        (2 * std::log(c_.rope_theta));
    const double conc = 0.1 * std::log(c_.rope_scaling_factor) + 1;
    for (int i = 0; i < half; ++i) {
      const double f = std::pow(c_.rope_theta, 2.0 * i / d);
      double ramp = (i - low) / (high - low);
      ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
      const double omega = (1 / f) * (1 - ramp) + (1 / (c_.rope_scaling_factor * f)) * ramp;
      const double cs = conc * std::cos(pos * omega), sn = conc * std::sin(pos * omega);
      const double a = head[i], b = head[i + half];
      head[i] = a * cs - b * sn;
      head[i + half] = b * cs + a * sn;
    }
  }

  // notes/fp8.md, with an enumerated E4M3 grid (independent of numeric.h's converter).
  std::vector<double> fp8_quantize(const std::vector<double>& t) const {
    static const std::vector<double> grid = [] {
      std::vector<double> g;
      for (int e = 0; e < 16; ++e) {
        for (int m = 0; m < 8; ++m) {
          if (e == 15 && m == 7) continue;  // NaN
          g.push_back(e == 0 ? m / 8.0 * std::pow(2, -6) : (1 + m / 8.0) * std::pow(2, e - 7));
        }
      }
      return g;
    }();
    std::vector<double> out(t.size());
    for (size_t b = 0; b < t.size(); b += 32) {
      double amax = 0;
      for (size_t j = b; j < b + 32; ++j) amax = std::max(amax, std::fabs(t[j]));
      if (amax == 0) continue;
      int e2;
      std::frexp(amax, &e2);  // amax = m * 2^e2, m in [0.5, 1): floor(log2 amax) = e2 - 1
      const int e = std::clamp(e2 - 1 - 8, -127, 127);
      for (size_t j = b; j < b + 32; ++j) {
        const double a = std::min(std::fabs(t[j]) * std::pow(2.0, -e), 448.0);
        size_t best = 0;
        for (size_t i = 1; i < grid.size(); ++i) {
          const double d0 = std::fabs(grid[best] - a), d1 = std::fabs(grid[i] - a);
          if (d1 < d0 || (d1 == d0 && i % 2 == 0)) best = i;  // ties: even mantissa
        }
        out[j] = std::copysign(grid[best] * std::pow(2.0, e), t[j]);
      }
    }
    return out;
  }

  static std::vector<double> to_double(const std::vector<bf16_bits>& v) {
    std::vector<double> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_float(v[i]);
    return out;
  }
  static std::vector<double> to_double(const std::vector<float>& v) {
    return std::vector<double>(v.begin(), v.end());
  }

  // One layer. With `tf` (teacher forcing) every phase takes its inputs from the reference's
  // buffers instead of this model's previous phase, so each compared buffer carries the error of
  // one phase only; without it the model runs on its own values.
  std::vector<double> layer(int l, const std::vector<double>& x_own, const ref::LayerBuffers* tf) {
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    NaiveLayer& o = layers_[static_cast<size_t>(l)];
    const int H = c_.hidden, hd = c_.head_dim, Q = c_.q_dim(), KV = c_.kv_dim();
    const std::vector<double> x = tf ? to_double(tf->x_in) : x_own;
    o.t_attn = rmsnorm(x, L.attn_norm);
    const std::vector<double> t_attn = tf ? to_double(tf->t_attn) : o.t_attn;
    o.qkv.assign(static_cast<size_t>(c_.qkv_dim()), 0);
    for (int i = 0; i < c_.qkv_dim(); ++i) {
      o.qkv[i] = matvec_row(static_cast<const bf16_bits*>(L.qkv_weight), i, H, t_attn) + bf16_to_float(L.qkv_bias[i]);
    }
    for (int h = 0; h < c_.num_heads + c_.num_kv_heads; ++h) rope(&o.qkv[size_t(h) * hd], pos_);
    for (double& v : o.qkv) v = r(v);
    const std::vector<double> qkv = tf ? to_double(tf->qkv) : o.qkv;
    k_[l].emplace_back(qkv.begin() + Q, qkv.begin() + Q + KV);
    v_[l].emplace_back(qkv.begin() + Q + KV, qkv.end());
    o.attn.assign(static_cast<size_t>(Q), 0);
    for (int h = 0; h < c_.num_heads; ++h) {
      const int g = h / (c_.num_heads / c_.num_kv_heads);
      const double sink = bf16_to_float(L.sinks[h]);
      std::vector<double> logit;
      std::vector<int> keys;
      for (int j = 0; j <= pos_; ++j) {
        if (c_.is_sliding(l) && pos_ - j >= c_.sliding_window) continue;
        double s = 0;
        for (int d = 0; d < hd; ++d) s += qkv[size_t(h) * hd + d] * k_[l][j][size_t(g) * hd + d];
        logit.push_back(s / std::sqrt(double(hd)));
        keys.push_back(j);
      }
      double m = sink;
      for (double v : logit) m = std::max(m, v);
      double z = std::exp(sink - m);
      for (double v : logit) z += std::exp(v - m);
      for (int d = 0; d < hd; ++d) {
        double acc = 0;
        for (size_t j = 0; j < keys.size(); ++j) {
          acc += std::exp(logit[j] - m) * v_[l][keys[j]][size_t(g) * hd + d];
        }
        o.attn[size_t(h) * hd + d] = r(acc / z);
      }
    }
    const std::vector<double> attn = tf ? to_double(tf->attn) : o.attn;
    o.x_attn = x;
    for (int n = 0; n < H; ++n) {
      o.x_attn[n] += matvec_row(static_cast<const bf16_bits*>(L.out_weight), n, Q, attn) + bf16_to_float(L.out_bias[n]);
    }
    const std::vector<double> x_attn = tf ? to_double(tf->x_attn) : o.x_attn;
    o.t_mlp = rmsnorm(x_attn, L.mlp_norm);
    const std::vector<double> t_mlp = tf ? to_double(tf->t_mlp) : o.t_mlp;
    const int E = c_.num_experts, K = c_.experts_per_token, I = c_.intermediate;
    o.router_logits.assign(static_cast<size_t>(E), 0);
    for (int e = 0; e < E; ++e) {
      o.router_logits[e] = matvec_row(L.router_weight, e, H, t_mlp) +
                           bf16_to_float(L.router_bias[e]);
    }
    std::vector<int> order(static_cast<size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      return o.router_logits[a] != o.router_logits[b] ? o.router_logits[a] > o.router_logits[b]
                                                      : a < b;
    });
    o.experts.assign(order.begin(), order.begin() + K);
    o.kth_gap = K < E ? o.router_logits[order[K - 1]] - o.router_logits[order[K]] : 1e30;
    // Teacher-forced, the reference's choice is used (the caller checks it against ours).
    const std::vector<int> experts = tf ? tf->experts : o.experts;
    std::vector<double> weight(static_cast<size_t>(K));
    double z = 0;
    for (int i = 0; i < K; ++i) {
      z += weight[i] = std::exp(o.router_logits[experts[i]] - o.router_logits[experts[0]]);
    }
    for (double& v : weight) v /= z;
    o.expert_in = fp8_ ? fp8_quantize(t_mlp) : t_mlp;
    o.swiglu.assign(static_cast<size_t>(K) * I, 0);
    for (int i = 0; i < K; ++i) {
      const size_t e = static_cast<size_t>(experts[i]);
      for (int m = 0; m < I; ++m) {
        double gu[2];
        for (int half = 0; half < 2; ++half) {  // rows 2m (gate) and 2m+1 (linear), interleaved
          const size_t rr = e * c_.mlp1_dim() + 2 * m + half;
          double s = 0;
          for (int k = 0; k < H; ++k) {
            s += double(mxfp4_element(L.mlp1_blocks + rr * (H / 2), L.mlp1_scales + rr * (H / 32),
                                      k)) * o.expert_in[k];
          }
          gu[half] = s + bf16_to_float(L.mlp1_bias[rr]);
        }
        const double g = std::min(gu[0], double(c_.swiglu_limit));
        const double u = std::clamp(gu[1], -double(c_.swiglu_limit), double(c_.swiglu_limit));
        o.swiglu[size_t(i) * I + m] = r(g / (1 + std::exp(-1.702 * g)) * (u + 1));
      }
    }
    const std::vector<double> swiglu = tf ? to_double(tf->swiglu) : o.swiglu;
    o.x_out = x_attn;
    for (int i = 0; i < K; ++i) {
      const size_t e = static_cast<size_t>(experts[i]);
      for (int n = 0; n < H; ++n) {
        const size_t rr = e * H + n;
        double s = 0;
        for (int k = 0; k < I; ++k) {
          s += double(mxfp4_element(L.mlp2_blocks + rr * (I / 2), L.mlp2_scales + rr * (I / 32),
                                    k)) * swiglu[size_t(i) * I + k];
        }
        o.x_out[n] += weight[i] * (s + bf16_to_float(L.mlp2_bias[rr]));
      }
    }
    return o.x_out;
  }

  const ModelWeights& w_;
  ModelConfig c_;
  bool round_, fp8_;
  int pos_ = 0;
  std::vector<std::vector<std::vector<double>>> k_, v_;  // [layer][pos][kv_dim]
  std::vector<NaiveLayer> layers_;
  std::vector<double> final_t_;
};

}  // namespace gptoss::naive
