// session.h — what `generate` and `chat` share: the model options on the command line, loading
// the model (an archive, or synthetic weights) onto a backend (the CPU reference or the GPU
// engine), the tokenizer, and decode steps that return the sampled next token, with KV-cache
// reuse across calls (Session::extend).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/archive/archive.h"
#include "host/decode_options.h"
#include "host/model_config.h"
#include "host/sampling/sampler.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"
#include "host/weights_view.h"

namespace CLI {
class App;
}

namespace gptoss {
namespace ref {
class Reference;
class MemoryModel;
}  // namespace ref
class GpuEngine;
class GpuSampler;
}  // namespace gptoss

namespace gptoss::cli {

// The options naming the model and the backend.
struct ModelOptions {
  std::string model;
  std::string synthetic;
  std::optional<uint64_t> weights_seed;
  std::string backend = "auto";
  std::string experts = "bf16";
  int max_context = 4096;
  int threads = 0;
  std::string attn, lm_head;  // --synthetic: stored formats of attention / LM head (empty = bf16)
  std::string prefill;        // --prefill: batched or decode; empty = batched on the GPU (the CPU backend runs positions one at a time)
  bool keep_logits = false;   // not an option: generate --logits-out sets it
};

// The sampling options (--temp, --top-k, --top-p, --min-p, --seed) as given.
struct SamplingOptions {
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  std::optional<uint64_t> seed;
};

// Adds -m, --synthetic, --weights-seed, --backend, --experts, --attn, --lm-head, --max-context,
// --threads.
void add_model_options(CLI::App* cmd, ModelOptions& o);
// Adds --temp (default `default_temp`), --top-k, --top-p, --min-p and --seed.
void add_sampling_options(CLI::App* cmd, SamplingOptions& o, float default_temp);

// The one rule for the old meaning of --seed (the synthetic weights' seed, before sampling
// existed): when --synthetic is given without --weights-seed and the decoding is greedy (so no
// sampling seed is used), --seed N seeds the weights, with a deprecation note on stderr. In every
// other case --seed is the sampler's. Returns the weights' seed (default 1) and fills `params`
// (validated: bad values throw gptoss::Error naming the option).
uint64_t resolve_seeds(const ModelOptions& m, const SamplingOptions& s,
                       sampling::SamplingParams* params);

// Reads -p's text: "-" reads stdin; or -f FILE's contents. Throws gptoss::Error naming the file.
std::string read_prompt_text(const std::string& prompt, const std::string& file);

// One token generated per call of Session::step: the input token at position pos, and the next.
using StepFn = std::function<int(int token, int pos, bool want_next)>;

class Session {
 public:
  // Opens the archive (or takes the synthetic shape's config) and resolves the backend; the
  // weights are loaded by start(), once the request is known to be valid.
  Session(const ModelOptions& model, const sampling::SamplingParams& sampling,
          uint64_t weights_seed);
  ~Session();

  const ModelConfig& config() const { return config_; }
  const std::string& label() const { return label_; }
  const std::string& backend() const { return backend_; }  // "cpu" or "cuda"
  std::string backend_label() const;                       // with the thread count
  int max_context() const { return decode_.max_context; }
  const sampling::SamplingParams& sampling() const { return sampler_.params(); }
  // The archive's tokenizer, or the bundled o200k_harmony (loaded on first use).
  const tok::Tokenizer& tokenizer();
  // Ids >= the vocabulary are refused with a message naming the first.
  void check_ids(const std::vector<int>& ids) const;

  // Loads the weights and builds the backend. Prints what it did on stderr. With
  // `sampling_may_change` (the server: each request brings its own), set_sampling() may switch
  // between greedy and sampled decoding later (the GPU engine then always keeps its logits).
  void start(bool sampling_may_change = false);
  // Replaces the sampling parameters (validated; throws gptoss::Error naming the value) and
  // restarts the draw count, so a request with a seed gets the same tokens every time. Needs
  // start(true), or the same greediness as before.
  void set_sampling(const sampling::SamplingParams& params);
  GpuEngine* gpu_engine() { return gpu_.get(); }
  // The last full step's logits (the CPU reference's, or the GPU engine's when it keeps them:
  // ModelOptions::keep_logits or sampling).
  std::vector<float> logits() const;

  // Runs `token` at `pos` and returns the next token (sampled); with !want_next (a prompt
  // position before the last) it skips the LM head and returns -1. Positions run in order; a step at an earlier
  // position continues from there (see extend()).
  int step(int token, int pos, bool want_next = true) { return step_(token, pos, want_next); }
  // Replaces the step function by wrap(the current one) (generate --test-fault).
  // A wrapped step sees every prompt position, so prompt positions then run one step each
  // (batched_prefill() turns false).
  void wrap_step(const std::function<StepFn(StepFn)>& wrap) {
    step_ = wrap(std::move(step_));
    step_wrapped_ = true;
  }
  // Whether prompt positions before the last run through the batched prefill kernels (the CUDA
  // backend unless --prefill decode or the step is wrapped) rather than one decode step each.
  bool batched_prefill() const;
  // Prompt positions [first_pos, first_pos + count) whose next token nobody reads, into the KV
  // cache: batched (GpuEngine::prefill) or one step(token, pos, false) each. After start().
  void prefill(const int* tokens, int count, int first_pos);

  // Brings the KV cache to hold `tokens` (the whole conversation so far) and returns the next
  // token. The longest prefix shared with what the cache holds is reused; when the cache holds
  // tokens past that prefix (harmony dropped an earlier analysis message), the run restarts at
  // the prefix's end, or up to a sliding window before it where the sliding layers' ring slots
  // of those positions were overwritten since.
  struct ExtendInfo {
    int reused = 0;         // leading positions kept from the cache
    int run = 0;            // positions run
    bool diverged = false;  // the cache held other tokens after the shared prefix
  };
  int extend(const std::vector<int>& tokens, ExtendInfo* info = nullptr);
  // Records that a generated token was run at the next position (chat: the reply's tokens).
  void append_cached(int token) { cached_.push_back(token); }
  const std::vector<int>& cached() const { return cached_; }
  void clear_cache() { cached_.clear(); }

 private:
  ModelOptions opts_;
  uint64_t weights_seed_;
  DecodeOptions decode_;
  std::optional<MappedArchive> archive_;
  std::unique_ptr<ref::MemoryModel> memory_;
  ModelWeights weights_;
  ModelConfig config_;
  std::string label_, backend_;
  std::optional<tok::Tokenizer> tokenizer_;
  sampling::Sampler sampler_;
  std::unique_ptr<ref::Reference> cpu_;
  std::unique_ptr<GpuEngine> gpu_;
  std::unique_ptr<GpuSampler> gpu_sampler_;
  StepFn step_;
  bool sampling_may_change_ = false;
  bool step_wrapped_ = false;
  std::vector<int> cached_;  // the tokens whose K and V are in the cache, position by position
};

}  // namespace gptoss::cli
