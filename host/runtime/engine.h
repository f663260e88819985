// engine.h — GpuEngine: the host side of the persistent megakernel. Uploads a model's weights
// (any ModelWeights view: an archive's mmap or an in-memory test model), allocates the KV cache
// and activation buffers, and runs one cooperative launch per decode step. Memory is checked
// before any large allocation, with the largest context that would fit in the message.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "host/model_config.h"
#include "host/weights_view.h"
#include "megakernel/kernel_args.h"

namespace gptoss {

struct GpuEngineOptions {
  int max_context = 4096;    // KV capacity of full-attention layers, in positions
  bool experts_fp8 = false;  // FP8 expert activations (E4M3 + E8M0 per 32)
  bool keep_logits = false;  // write the FP32 logits every step (accuracy tools, tests)
  bool quiet = false;        // no upload progress on stderr
};

// Bytes of device memory the engine needs besides the weights, for a context of max_context.
uint64_t gpu_kv_cache_bytes(const ModelConfig& config, int max_context);

class GpuEngine {
 public:
  GpuEngine(const ModelWeights& weights, const GpuEngineOptions& options);
  // Synthetic weights generated in GPU memory, bit-identical to `gptoss synth --seed` + convert.
  GpuEngine(const ModelConfig& config, uint64_t synthetic_seed, const GpuEngineOptions& options);
  ~GpuEngine();
  GpuEngine(const GpuEngine&) = delete;
  GpuEngine& operator=(const GpuEngine&) = delete;

  const ModelConfig& config() const { return config_; }
  int grid_size() const { return grid_; }
  int max_context() const { return opts_.max_context; }

  // Runs `token` at position `pos` (positions must be run in order from 0); returns the greedy
  // next token. Throws gptoss::Error on a kernel error or invalid output.
  int step(int token, int pos);
  // Logits of the last step (requires keep_logits); copied to the host.
  std::vector<float> logits() const;

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
  // Overwrites K and V of one layer at one position (tests feed the reference's cache).
  void write_kv(int layer, int pos, const uint16_t* k, const uint16_t* v);
  // XXH64 of every canonical tensor as stored on the device (canonical_tensors() order).
  std::vector<uint64_t> weight_hashes() const;
  // Profiling: record the phase timeline in every following step (MegakernelArgs::phase_times)
  // and read the last step's, in nanoseconds: [0] start, [1 + layer * kNumPhases + phase] after
  // each phase's barrier, [1 + num_layers * kNumPhases] the end of the LM head.
  void enable_phase_times();
  std::vector<uint64_t> read_phase_times() const;
  // Kernel time of the last step() in milliseconds (device events around the launch).
  float last_kernel_ms() const { return last_kernel_ms_; }
  mk::MegakernelArgs& args() { return args_; }

 private:
  void init(const ModelWeights* host_weights, uint64_t synthetic_seed);
  void launch(int token, int pos);
  void check_control();

  ModelConfig config_;
  GpuEngineOptions opts_;
  int grid_ = 0;
  mk::MegakernelArgs args_{};
  std::vector<mk::LayerArgs> layers_host_;
  std::vector<void*> allocations_;  // freed in the destructor
  std::vector<const void*> weight_ptrs_;  // device pointer per canonical tensor
  float last_kernel_ms_ = 0;
  std::unique_ptr<class EventPair> events_;
};

}  // namespace gptoss
