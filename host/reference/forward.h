// forward.h — the CPU reference forward pass (gptoss::ref::Reference): one position at a time
// with a BF16 KV cache, phase for phase like the megakernel (megakernel/phases.h), FP32 math
// with the DESIGN.md section 6 rounding points. It is the oracle of the GPU tests and the
// no-GPU backend. Weights are read only through a ModelWeights view (host/weights_view.h).
// The big GEMVs (QKV, O, experts, LM head) run on a small thread pool; every output element is
// computed by one thread in a fixed order, so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>
#include <vector>

#include "host/decode_options.h"  // DecodeOptions, ExpertMode
#include "host/model_config.h"
#include "host/numeric.h"
#include "host/reference/ops.h"
#include "host/reference/thread_pool.h"
#include "host/weights_view.h"
#include "megakernel/phases.h"

namespace gptoss::ref {

struct RouterMargins {
  float kth_gap = std::numeric_limits<float>::infinity();   // k-th minus (k+1)-th router logit
  float top2_gap = std::numeric_limits<float>::infinity();  // 1st minus 2nd router logit
};

// The activation buffers of one layer, in phase order. A phase reads the fields written by the
// phases before it (and x_in); Reference::run_phase runs one phase on whatever they hold.
struct LayerBuffers {
  std::vector<float> x_in;             // [hidden] residual entering the layer (fp32)
  // kNormQkvRope
  std::vector<bf16_bits> t_attn;       // [hidden] rmsnorm(x_in) * attn_norm
  std::vector<bf16_bits> qkv;          // [q_dim + 2 kv_dim] q | k | v, bias added, q/k roped
  // kAttention
  std::vector<bf16_bits> attn;         // [q_dim] heads concatenated
  // kOutProj
  std::vector<float> x_attn;           // [hidden] x_in + W_o attn + b_o
  // kRouter
  std::vector<bf16_bits> t_mlp;        // [hidden] rmsnorm(x_attn) * mlp_norm
  std::vector<float> router_logits;    // [num_experts]
  std::vector<uint8_t> t_fp8;          // [hidden] e4m3 codes of t_mlp (fp8 mode only)
  std::vector<uint8_t> t_fp8_scales;   // [hidden / 32] e8m0 (fp8 mode only)
  std::vector<float> expert_in;        // [hidden] what the gate_up GEMV multiplies: t_mlp, or
                                       // the dequantized fp8 values in fp8 mode
  // kExpertsUp
  std::vector<int> experts;            // [k] chosen experts, rank order
  std::vector<float> expert_weights;   // [k] softmax over the chosen logits
  RouterMargins margins;
  std::vector<bf16_bits> swiglu;       // [k, intermediate] per chosen expert (rank order)
  // kExpertsDown
  std::vector<float> expert_out;       // [k, hidden] W2 a + b2 per chosen expert, unweighted
  std::vector<float> x_out;            // [hidden] x_attn + sum_e w_e expert_out[e]

  // Sizes every buffer for `config` (values zero).
  void resize(const ModelConfig& config);
};

// BF16 K (after RoPE) and V per layer. Sliding layers keep a ring of sliding_window slots
// (position p in slot p % window); full layers one slot per position up to the capacity.
// Slot layout: [num_kv_heads, head_dim].
class KvCache {
 public:
  KvCache(const ModelConfig& config, int capacity);
  int capacity() const { return capacity_; }
  int slot(int layer, int pos) const;
  bf16_bits* k(int layer, int pos);
  bf16_bits* v(int layer, int pos);
  const bf16_bits* k(int layer, int pos) const;
  const bf16_bits* v(int layer, int pos) const;

 private:
  ModelConfig config_;
  int capacity_;
  std::vector<std::vector<bf16_bits>> k_, v_;  // [layer][slots * kv_dim]
};

class Reference {
 public:
  // `weights` must outlive the Reference. Reads options.experts, num_threads and max_context.
  Reference(const ModelWeights& weights, DecodeOptions options = {});

  const ModelConfig& config() const { return w_.config; }
  ExpertMode expert_mode() const { return opts_.experts; }
  int position() const { return pos_; }  // positions processed so far = next position
  void reset() { pos_ = 0; }             // the cache is overwritten as positions are redone

  // Runs `token` at position(), fills logits() and the per-layer buffers, advances the position
  // and returns the greedy next token (argmax, the lowest index wins ties).
  int step(int token);
  // Runs `token` at position() through every layer (KV cache and layer buffers, as step() does)
  // and advances the position, without the final norm and the LM head: a prompt position whose
  // logits nobody reads. logits() and final_t() keep the last step()'s values.
  void advance(int token);

  const std::vector<float>& logits() const { return logits_; }        // [vocab] fp32
  const std::vector<bf16_bits>& final_t() const { return t_final_; }  // [hidden] normed x
  const LayerBuffers& layer(int l) const { return layers_.at(static_cast<size_t>(l)); }
  float logit_margin() const { return logit_margin_; }  // top-1 minus top-2 logit of the step

  // Runs one phase of one layer on the inputs already in `buf`, for position `pos`. It reads
  // and writes the KV cache like step() does (kNormQkvRope writes slot pos; kAttention reads
  // positions before pos from the cache and the current k, v from buf.qkv, as the kernel does).
  void run_phase(mk::Phase phase, int layer, int pos, LayerBuffers& buf);

  KvCache& cache() { return cache_; }
  const YarnRope& rope() const { return rope_; }
  ThreadPool& pool() { return pool_; }

 private:
  void norm_qkv_rope(int layer, int pos, LayerBuffers& b);
  void attention(int layer, int pos, LayerBuffers& b);
  void out_proj(int layer, LayerBuffers& b);
  void router(int layer, LayerBuffers& b);
  void experts_up(int layer, LayerBuffers& b);
  void experts_down(int layer, LayerBuffers& b);
  // Checks `token` and the position, runs every layer for it; returns the final residual.
  std::vector<float> run_layers(int token);

  const ModelWeights& w_;
  DecodeOptions opts_;
  ThreadPool pool_;
  YarnRope rope_;
  KvCache cache_;
  int pos_ = 0;
  std::vector<LayerBuffers> layers_;
  std::vector<bf16_bits> t_final_;
  std::vector<float> t_final_f_;
  std::vector<float> logits_;
  float logit_margin_ = 0;
};

// Argmax with the lowest index winning ties (NaN never wins).
int greedy_argmax(const std::vector<float>& logits);

}  // namespace gptoss::ref
