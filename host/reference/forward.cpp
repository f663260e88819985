#include "host/reference/forward.h"

#include <algorithm>
#include <cmath>

#include "host/error.h"

namespace gptoss::ref {
namespace {

std::vector<float> to_float(const std::vector<bf16_bits>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_float(v[i]);
  return out;
}

size_t sz(int n) { return static_cast<size_t>(n); }

}  // namespace

void LayerBuffers::resize(const ModelConfig& c) {
  const size_t h = sz(c.hidden), k = sz(c.experts_per_token);
  x_in.assign(h, 0.0f);
  t_attn.assign(h, 0);
  qkv.assign(sz(c.qkv_dim()), 0);
  attn.assign(sz(c.q_dim()), 0);
  x_attn.assign(h, 0.0f);
  t_mlp.assign(h, 0);
  router_logits.assign(sz(c.num_experts), 0.0f);
  t_fp8.assign(h, 0);
  t_fp8_scales.assign(h / 32, 0);
  expert_in.assign(h, 0.0f);
  experts.assign(k, 0);
  expert_weights.assign(k, 0.0f);
  margins = {};
  swiglu.assign(k * sz(c.intermediate), 0);
  expert_out.assign(k * h, 0.0f);
  x_out.assign(h, 0.0f);
}

// ---- KV cache ------------------------------------------------------------------------------

KvCache::KvCache(const ModelConfig& config, int capacity)
    : config_(config), capacity_(capacity) {
  GPTOSS_CHECK(capacity > 0, "KV cache capacity must be positive (got {})", capacity);
  k_.resize(sz(config.num_layers));
  v_.resize(sz(config.num_layers));
  // Full layers grow on demand (a 128K-position cache is gigabytes); sliding rings are small.
  for (int l = 0; l < config.num_layers; ++l) {
    if (config.is_sliding(l)) {
      const size_t n = sz(std::min(config.sliding_window, capacity)) * sz(config.kv_dim());
      k_[sz(l)].assign(n, 0);
      v_[sz(l)].assign(n, 0);
    }
  }
}

int KvCache::slot(int layer, int pos) const {
  if (pos < 0 || pos >= capacity_) {
    throw Error(fmt::format("position {} is outside the KV cache (capacity {} positions)", pos,
                            capacity_),
                "raise the context length", Remedy::kRaiseContext);
  }
  return config_.is_sliding(layer) ? pos % config_.sliding_window : pos;
}

bf16_bits* KvCache::k(int layer, int pos) {
  const size_t need = (sz(slot(layer, pos)) + 1) * sz(config_.kv_dim());
  auto grow = [&](std::vector<bf16_bits>& buf) {
    if (buf.size() < need) {
      const size_t cap = sz(capacity_) * sz(config_.kv_dim());
      buf.resize(std::min(cap, std::max(need, 2 * buf.size())), 0);
    }
  };
  grow(k_[sz(layer)]);
  grow(v_[sz(layer)]);
  return k_[sz(layer)].data() + sz(slot(layer, pos)) * sz(config_.kv_dim());
}

bf16_bits* KvCache::v(int layer, int pos) {
  k(layer, pos);  // grows both
  return v_[sz(layer)].data() + sz(slot(layer, pos)) * sz(config_.kv_dim());
}

const bf16_bits* KvCache::k(int layer, int pos) const {
  const size_t off = sz(slot(layer, pos)) * sz(config_.kv_dim());
  GPTOSS_CHECK(off < k_[sz(layer)].size(), "KV cache: layer {} position {} was never written",
               layer, pos);
  return k_[sz(layer)].data() + off;
}

const bf16_bits* KvCache::v(int layer, int pos) const {
  const size_t off = sz(slot(layer, pos)) * sz(config_.kv_dim());
  GPTOSS_CHECK(off < v_[sz(layer)].size(), "KV cache: layer {} position {} was never written",
               layer, pos);
  return v_[sz(layer)].data() + off;
}

// ---- the forward pass ------------------------------------------------------------------------

Reference::Reference(const ModelWeights& weights, DecodeOptions options)
    : w_(weights),
      opts_(options),
      pool_(options.num_threads),
      rope_(weights.config),
      cache_(weights.config, resolve_max_context(weights.config, options.max_context)) {
  const ModelConfig& c = w_.config;
  c.validate();
  GPTOSS_CHECK(w_.embed && w_.final_norm && w_.lm_head &&
                   static_cast<int>(w_.layers.size()) == c.num_layers,
               "reference: the weights view is not bound for this config");
  const bool attn_fp8 = w_.formats.attn == archive::WeightFormat::kFP8;
  for (const LayerWeights& L : w_.layers) {
    GPTOSS_CHECK((L.qkv_scale != nullptr) == attn_fp8 && (L.out_scale != nullptr) == attn_fp8,
                 "reference: attention scales do not match the attention format");
  }
  GPTOSS_CHECK((w_.lm_head_scale != nullptr) == (w_.formats.lm_head == archive::WeightFormat::kFP8),
               "reference: the LM-head scale does not match the LM-head format");
  layers_.resize(sz(c.num_layers));
  for (auto& b : layers_) b.resize(c);
  t_final_.assign(sz(c.hidden), 0);
  t_final_f_.assign(sz(c.hidden), 0.0f);
  logits_.assign(sz(c.vocab_size), 0.0f);
}

void Reference::run_phase(mk::Phase phase, int layer, int pos, LayerBuffers& buf) {
  GPTOSS_CHECK(layer >= 0 && layer < config().num_layers, "layer {} out of range", layer);
  switch (phase) {
    case mk::Phase::kNormQkvRope: return norm_qkv_rope(layer, pos, buf);
    case mk::Phase::kAttention: return attention(layer, pos, buf);
    case mk::Phase::kOutProj: return out_proj(layer, buf);
    case mk::Phase::kRouter: return router(layer, buf);
    case mk::Phase::kExpertsUp: return experts_up(layer, buf);
    case mk::Phase::kExpertsDown: return experts_down(layer, buf);
    case mk::Phase::kCount: break;
  }
  throw Error("run_phase: not a phase");
}

void Reference::norm_qkv_rope(int layer, int pos, LayerBuffers& b) {
  const ModelConfig& c = config();
  const LayerWeights& L = w_.layers[sz(layer)];
  const int H = c.hidden, hd = c.head_dim;
  rmsnorm_bf16(b.t_attn.data(), b.x_in.data(), L.attn_norm, H, c.rms_norm_eps);
  const std::vector<float> t = to_float(b.t_attn);
  std::vector<float> qkv(sz(c.qkv_dim()));
  pool_.parallel_for(qkv.size(), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      qkv[r] = dense_row_dot(L.qkv_weight, L.qkv_scale, r, t.data(), H) +
               bf16_to_float(L.qkv_bias[r]);
    }
  });
  std::vector<float> cos(sz(rope_.num_pairs())), sin(sz(rope_.num_pairs()));
  rope_.row(pos, cos.data(), sin.data());
  for (int h = 0; h < c.num_heads + c.num_kv_heads; ++h) {  // q heads, then k heads (contiguous)
    apply_rope(qkv.data() + sz(h) * sz(hd), cos.data(), sin.data(), hd);
  }
  for (size_t i = 0; i < qkv.size(); ++i) b.qkv[i] = float_to_bf16(qkv[i]);
  const bf16_bits* k = b.qkv.data() + c.q_dim();
  const bf16_bits* v = k + c.kv_dim();
  std::copy(k, k + c.kv_dim(), cache_.k(layer, pos));
  std::copy(v, v + c.kv_dim(), cache_.v(layer, pos));
}

void Reference::attention(int layer, int pos, LayerBuffers& b) {
  const ModelConfig& c = config();
  const LayerWeights& L = w_.layers[sz(layer)];
  const int hd = c.head_dim;
  // Keys p - window + 1 .. p on sliding layers (window keys including the current one).
  const int first = c.is_sliding(layer) ? std::max(0, pos - c.sliding_window + 1) : 0;
  const int num_keys = pos - first + 1;
  const int group = c.num_heads / c.num_kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(double(hd)));
  const bf16_bits* cur_k = b.qkv.data() + c.q_dim();
  const bf16_bits* cur_v = cur_k + c.kv_dim();
  // The cache slots of positions first .. pos-1; the current k, v come from qkv.
  std::vector<const bf16_bits*> k_rows(sz(num_keys)), v_rows(sz(num_keys));
  for (int j = first; j < pos; ++j) {
    k_rows[sz(j - first)] = static_cast<const KvCache&>(cache_).k(layer, j);
    v_rows[sz(j - first)] = static_cast<const KvCache&>(cache_).v(layer, j);
  }
  k_rows.back() = cur_k;
  v_rows.back() = cur_v;
  pool_.parallel_for(sz(c.num_heads), [&](size_t begin, size_t end) {
    std::vector<const bf16_bits*> ks(sz(num_keys)), vs(sz(num_keys));
    std::vector<float> q(sz(hd)), o(sz(hd));
    for (size_t h = begin; h < end; ++h) {
      const size_t g = h / sz(group);
      for (size_t j = 0; j < sz(num_keys); ++j) {
        ks[j] = k_rows[j] + g * sz(hd);
        vs[j] = v_rows[j] + g * sz(hd);
      }
      for (int d = 0; d < hd; ++d) q[sz(d)] = bf16_to_float(b.qkv[h * sz(hd) + sz(d)]);
      attention_head(o.data(), q.data(), ks.data(), vs.data(), num_keys, hd, scale,
                     bf16_to_float(L.sinks[h]));
      for (int d = 0; d < hd; ++d) b.attn[h * sz(hd) + sz(d)] = float_to_bf16(o[sz(d)]);
    }
  });
}

void Reference::out_proj(int layer, LayerBuffers& b) {
  const ModelConfig& c = config();
  const LayerWeights& L = w_.layers[sz(layer)];
  const std::vector<float> a = to_float(b.attn);
  const int Q = c.q_dim();
  pool_.parallel_for(sz(c.hidden), [&](size_t begin, size_t end) {
    for (size_t n = begin; n < end; ++n) {
      const float o = dense_row_dot(L.out_weight, L.out_scale, n, a.data(), Q) +
                      bf16_to_float(L.out_bias[n]);
      b.x_attn[n] = b.x_in[n] + o;
    }
  });
}

void Reference::router(int layer, LayerBuffers& b) {
  const ModelConfig& c = config();
  const LayerWeights& L = w_.layers[sz(layer)];
  const int H = c.hidden;
  rmsnorm_bf16(b.t_mlp.data(), b.x_attn.data(), L.mlp_norm, H, c.rms_norm_eps);
  const std::vector<float> t = to_float(b.t_mlp);
  for (int e = 0; e < c.num_experts; ++e) {
    b.router_logits[sz(e)] = dot_bf16(L.router_weight + sz(e) * sz(H), t.data(), H) +
                             bf16_to_float(L.router_bias[e]);
  }
  if (opts_.experts == ExpertMode::kFp8) {
    quantize_fp8_blocks(b.t_fp8.data(), b.t_fp8_scales.data(), b.expert_in.data(), t.data(), H);
  } else {
    std::fill(b.t_fp8.begin(), b.t_fp8.end(), 0);
    std::fill(b.t_fp8_scales.begin(), b.t_fp8_scales.end(), 0);
    b.expert_in = t;
  }
}

void Reference::experts_up(int layer, LayerBuffers& b) {
  const ModelConfig& c = config();
  const LayerWeights& L = w_.layers[sz(layer)];
  const int H = c.hidden, I = c.intermediate, k = c.experts_per_token;
  TopK top = router_topk(b.router_logits.data(), c.num_experts, k);
  b.experts = top.experts;
  b.expert_weights = top.weights;
  b.margins = {top.kth_gap, top.top2_gap};
  const size_t row_bytes = sz(H / 32) * 16, row_scales = sz(H / 32);
  const size_t rows = sz(c.mlp1_dim());
  pool_.parallel_for(sz(k) * sz(I), [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) {
      const size_t r = item / sz(I), m = item % sz(I);
      const size_t e = sz(b.experts[r]);
      const size_t gate_row = e * rows + 2 * m, up_row = gate_row + 1;
      const float gate = dot_mxfp4(L.mlp1_blocks + gate_row * row_bytes,
                                   L.mlp1_scales + gate_row * row_scales, b.expert_in.data(), H) +
                         bf16_to_float(L.mlp1_bias[gate_row]);
      const float up = dot_mxfp4(L.mlp1_blocks + up_row * row_bytes,
                                 L.mlp1_scales + up_row * row_scales, b.expert_in.data(), H) +
                       bf16_to_float(L.mlp1_bias[up_row]);
      b.swiglu[item] = float_to_bf16(swiglu(gate, up, c.swiglu_limit));
    }
  });
}

void Reference::experts_down(int layer, LayerBuffers& b) {
  const ModelConfig& c = config();
  const LayerWeights& L = w_.layers[sz(layer)];
  const int H = c.hidden, I = c.intermediate, k = c.experts_per_token;
  for (int e : b.experts) {
    GPTOSS_CHECK(e >= 0 && e < c.num_experts, "experts_down: expert index {} out of range", e);
  }
  const std::vector<float> a = to_float(b.swiglu);
  const size_t row_bytes = sz(I / 32) * 16, row_scales = sz(I / 32);
  pool_.parallel_for(sz(H), [&](size_t begin, size_t end) {
    for (size_t n = begin; n < end; ++n) {
      float moe = 0.0f;
      for (size_t r = 0; r < sz(k); ++r) {
        const size_t row = sz(b.experts[r]) * sz(H) + n;
        const float y = dot_mxfp4(L.mlp2_blocks + row * row_bytes, L.mlp2_scales + row * row_scales,
                                  a.data() + r * sz(I), I) +
                        bf16_to_float(L.mlp2_bias[row]);
        b.expert_out[r * sz(H) + n] = y;
        moe += b.expert_weights[r] * y;
      }
      b.x_out[n] = b.x_attn[n] + moe;
    }
  });
}

std::vector<float> Reference::run_layers(int token) {
  const ModelConfig& c = config();
  if (token < 0 || token >= c.vocab_size) {
    throw Error(fmt::format("token id {} is outside the vocabulary (size {})", token,
                            c.vocab_size));
  }
  if (pos_ >= cache_.capacity()) {
    throw Error(fmt::format("position {} is beyond the context limit of {} positions", pos_,
                            cache_.capacity()),
                "raise the context length", Remedy::kRaiseContext);
  }
  const size_t H = sz(c.hidden);
  std::vector<float> x(H);
  for (size_t i = 0; i < H; ++i) x[i] = bf16_to_float(w_.embed[sz(token) * H + i]);
  for (int l = 0; l < c.num_layers; ++l) {
    LayerBuffers& b = layers_[sz(l)];
    b.x_in = x;
    for (size_t p = 0; p < mk::kNumPhases; ++p) run_phase(static_cast<mk::Phase>(p), l, pos_, b);
    x = b.x_out;
  }
  return x;
}

void Reference::advance(int token) {
  run_layers(token);
  ++pos_;
}

int Reference::step(int token) {
  const ModelConfig& c = config();
  const size_t H = sz(c.hidden);
  const std::vector<float> x = run_layers(token);
  rmsnorm_bf16(t_final_.data(), x.data(), w_.final_norm, c.hidden, c.rms_norm_eps);
  t_final_f_ = to_float(t_final_);
  pool_.parallel_for(sz(c.vocab_size), [&](size_t begin, size_t end) {
    for (size_t v = begin; v < end; ++v) {
      logits_[v] = dense_row_dot(w_.lm_head, w_.lm_head_scale, v, t_final_f_.data(), c.hidden);
    }
  });
  ++pos_;
  const int best = greedy_argmax(logits_);
  float second = -std::numeric_limits<float>::infinity();
  for (size_t v = 0; v < logits_.size(); ++v) {
    if (static_cast<int>(v) != best && logits_[v] > second) second = logits_[v];
  }
  logit_margin_ = logits_[sz(best)] - second;
  return best;
}

void Reference::rewind(int pos) {
  if (pos < 0 || pos > pos_) {
    throw Error(fmt::format("rewind to position {}: outside 0..{} (the positions run)", pos, pos_));
  }
  pos_ = pos;
}

int greedy_argmax(const std::vector<float>& logits) {
  int best = -1;
  for (size_t v = 0; v < logits.size(); ++v) {
    if (std::isnan(logits[v])) continue;
    if (best < 0 || logits[v] > logits[sz(best)]) best = static_cast<int>(v);
  }
  if (best < 0) throw Error("all logits are NaN");
  return best;
}

}  // namespace gptoss::ref
