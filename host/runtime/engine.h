// engine.h — GpuEngine: the host side of the persistent megakernel. Uploads a model's weights
// (any ModelWeights view: an archive's mmap or an in-memory test model), allocates the KV cache
// and activation buffers, and runs one cooperative launch per decode step. Memory is checked
// before any large allocation, with the largest context that would fit in the message.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "host/decode_options.h"
#include "host/model_config.h"
#include "host/runtime/weight_upload.h"
#include "host/weights_view.h"
#include "megakernel/kernel_args.h"
#include "model/expert_mode.h"

namespace gptoss {

// Bytes of device memory the engine needs besides the weights, for a context of max_context.
uint64_t gpu_kv_cache_bytes(const ModelConfig& config, int max_context);

class GpuEngine {
 public:
  // Reads options.experts, max_context (the KV capacity of full-attention layers; 0: the model's
  // context length), keep_logits and quiet.
  GpuEngine(const ModelWeights& weights, const DecodeOptions& options);
  // Synthetic weights generated in GPU memory, bit-identical to `gptoss synth --seed` + convert.
  GpuEngine(const ModelConfig& config, uint64_t synthetic_seed, const DecodeOptions& options);
  ~GpuEngine();
  GpuEngine(const GpuEngine&) = delete;
  GpuEngine& operator=(const GpuEngine&) = delete;

  const ModelConfig& config() const { return config_; }
  // How the weights reached the GPU (zero bytes for --synthetic, generated in place).
  const UploadStats& upload_stats() const { return upload_stats_; }
  int grid_size() const { return grid_; }
  int max_context() const { return opts_.max_context; }
  ExpertMode expert_mode() const { return opts_.experts; }
  // The stored formats of the weights on the device (the view's, or DecodeOptions::
  // synthetic_formats for --synthetic).
  const WeightFormats& formats() const { return formats_; }
  // The expert path of the following steps (bench: both paths timed on one upload).
  void set_expert_mode(ExpertMode mode);

  // Runs `token` at position `pos` (positions must be run in order from 0); returns the greedy
  // next token. Throws gptoss::Error on a kernel error or invalid output.
  int step(int token, int pos);
  // Runs `token` at `pos` through every layer (the KV cache) without the final norm and the LM
  // head: a prompt position whose next token nobody reads (the LM head is ~9-13% of a step).
  // logits() keeps the last step()'s values.
  void advance(int token, int pos);
  // Batched prefill (prefill/prefill.h): tokens[0, count) at positions [first_pos, first_pos +
  // count) through every layer with the prefill kernels, in chunks of prefill_chunk_tokens(),
  // leaving the KV cache as advance() would (up to the BF16 rounding of differently ordered FP32
  // sums: tests/gpu_test_prefill.cpp). No LM head: callers run the last prompt token with step().
  // Positions before first_pos must be in the cache already. The scratch buffers are allocated on
  // the first call (a clear error when the GPU lacks the memory: use --prefill decode).
  void prefill(const int* tokens, int count, int first_pos);
  // Tokens per prefill chunk (kPrefillChunk by default); tests lower it to cross chunk edges on
  // short prompts. Frees the scratch of the old size.
  void set_prefill_chunk_tokens(int tokens);
  int prefill_chunk_tokens() const { return prefill_chunk_; }
  static constexpr int kPrefillChunk = 1024;
  // Device time of the last prefill() in milliseconds.
  float last_prefill_ms() const { return last_prefill_ms_; }

  // Logits of the last step (requires keep_logits); copied to the host.
  std::vector<float> logits() const;
  // The same in device memory [vocab_size] (the GPU sampler reads them there); nullptr without
  // keep_logits. Valid until the next step.
  const float* device_logits() const { return args_.logits; }

  // Debug/tests: run position `pos` and stop after (stop_layer, stop_phase); or start at
  // `start_layer` with the residual x set to `x_in` first (start_layer > 0).
  void run_partial(int token, int pos, int stop_layer, int stop_phase, int start_layer = 0,
                   const std::vector<float>* x_in = nullptr);
  // Device buffers as host copies (tests).
  std::vector<float> read_x() const;
  std::vector<uint16_t> read_qkv() const;
  std::vector<uint16_t> read_attn() const;
  std::vector<float> read_router_logits() const;
  std::vector<uint16_t> read_swiglu() const;
  std::vector<int32_t> read_experts() const;
  // K and V of one layer at one position: [num_kv_heads * head_dim] each.
  std::vector<uint16_t> read_kv(int layer, int pos, bool value) const;
  // One layer's whole K (or V) cache [num_kv_heads, kv_capacity(layer), head_dim] (tests).
  std::vector<uint16_t> read_kv_cache(int layer, bool value) const;
  int kv_capacity(int layer) const;
  // Tests: every KV cache slot set to the BF16 NaN pattern 0xffff, so a slot a path should have
  // written but did not shows up as NaN.
  void poison_kv_cache();
  // Overwrites K and V of one layer at one position (tests feed the reference's cache).
  void write_kv(int layer, int pos, const uint16_t* k, const uint16_t* v);
  // XXH64 of every tensor as stored on the device (archive_tensors(config, formats()) order).
  std::vector<uint64_t> weight_hashes() const;
  // Profiling: record the phase timeline in every following step (MegakernelArgs::phase_times)
  // and read the last step's, in nanoseconds: [0] start, [1 + layer * kNumPhases + phase] after
  // each phase's barrier, [1 + num_layers * kNumPhases] the end of the LM head.
  void enable_phase_times();
  std::vector<uint64_t> read_phase_times() const;
  // Profiling: the following steps run phase p only when bit p of `mask` is set (bit kNumPhases:
  // the LM head); the grid barriers run regardless, so skipping a phase measures its cost. While
  // any bit is clear step() returns 0 (the output is meaningless). ~0u (the default) runs all.
  void set_phase_mask(uint32_t mask);
  // Fault injection (`generate --test-fault hang:POS`): grid barriers give up after `polls` polls
  // instead of the production cap, so a step whose CTAs wait at all reports a hang.
  void set_barrier_spin_cap(uint32_t polls);
  // Kernel time of the last step() in milliseconds (device events around the launch).
  float last_kernel_ms() const { return last_kernel_ms_; }
  // Tests only (barrier jitter and spin caps): the kernel's argument struct. Front ends and benches
  // use the methods above.
  mk::MegakernelArgs& args() { return args_; }

  // Grid barriers give up after this many polls (each an L2 round trip of ~1 us: tens of seconds,
  // far beyond any real step) and report where they hung instead of hanging the process.
  static constexpr uint32_t kBarrierSpinCap = 1u << 25;

 private:
  void init(const ModelWeights* host_weights, uint64_t synthetic_seed);
  void launch(int token, int pos);
  // After a failed launch: a gptoss::Error saying where the kernel hung, if a barrier reported it.
  void throw_if_hung() const;
  void check_control();

  ModelConfig config_;
  WeightFormats formats_;
  DecodeOptions opts_;  // max_context resolved (never 0)
  int grid_ = 0;
  UploadStats upload_stats_;
  mk::MegakernelArgs args_{};
  std::vector<mk::LayerArgs> layers_host_;
  std::vector<void*> allocations_;  // freed in the destructor
  std::vector<const void*> weight_ptrs_;  // device pointer per canonical tensor
  float last_kernel_ms_ = 0;
  float last_prefill_ms_ = 0;
  int prefill_chunk_ = kPrefillChunk;
  void* prefill_scratch_ = nullptr;  // prefill scratch for prefill_chunk_ tokens (lazily)
  HangReport* hang_report_ = nullptr;  // mapped pinned memory: readable after the trap it reports
  std::unique_ptr<class EventPair> events_;
};

}  // namespace gptoss
