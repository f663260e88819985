#include "host/cli/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "host/error.h"
#include "host/gpu.h"
#include "host/interrupt.h"
#include "host/reference/forward.h"
#include "host/reference/memory_model.h"
#include "host/runtime/engine.h"
#include "host/runtime/sample_gpu.h"
#include "host/synth_weights.h"  // conv::synth_fill (CPU --synthetic)

namespace gptoss::cli {

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("-m,--model", o.model, "a .gptoss archive (gptoss convert)");
  cmd->add_option("--synthetic", o.synthetic, "synthetic weights instead: tiny, 20b or 120b");
  cmd->add_option("--weights-seed", o.weights_seed, "seed of the synthetic weights (default 1)");
  cmd->add_option("--backend", o.backend, "auto (GPU if usable), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--experts", o.experts, "expert activations: bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}))
      ->capture_default_str();
  cmd->add_option("--attn", o.attn,
                  "with --synthetic: attention weights bf16 (default) or fp8 (E4M3, row scales)")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--lm-head", o.lm_head, "with --synthetic: LM head weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--prefill", o.prefill,
                  "prompt positions on the GPU: batched (the prefill kernels, the default) or decode "
                  "(one decode step each, for comparison)")
      ->check(CLI::IsMember({"batched", "decode"}));
  cmd->add_option("--max-context", o.max_context, "KV cache capacity in positions")
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU backend threads (0: all cores)")
      ->capture_default_str();
}

void add_sampling_options(CLI::App* cmd, SamplingOptions& o, float default_temp) {
  o.temperature = default_temp;
  cmd->add_option("--temp", o.temperature,
                  "sampling temperature; 0: greedy (gpt-oss recommends 1.0 with --top-p 1.0)")
      ->capture_default_str();
  cmd->add_option("--top-k", o.top_k, "keep the K most likely tokens (0: off)")
      ->capture_default_str();
  cmd->add_option("--top-p", o.top_p, "keep the most likely tokens of probability >= P (1: off)")
      ->capture_default_str();
  cmd->add_option("--min-p", o.min_p, "keep tokens of probability >= P x the largest (0: off)")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed,
                  "sampling seed (default 0; the same seed gives the same tokens on one backend)");
}

uint64_t resolve_seeds(const ModelOptions& m, const SamplingOptions& s,
                       sampling::SamplingParams* params) {
  params->temperature = s.temperature;
  params->top_k = s.top_k;
  params->top_p = s.top_p;
  params->min_p = s.min_p;
  params->seed = 0;
  sampling::validate(*params);
  uint64_t weights_seed = m.weights_seed.value_or(1);
  if (s.seed) {
    if (!m.synthetic.empty() && !m.weights_seed && params->greedy()) {
      weights_seed = *s.seed;
      fmt::print(stderr,
                 "note: --seed {} seeds the synthetic weights here, as it did before sampling "
                 "existed (greedy decoding draws nothing); this meaning goes in the next release: "
                 "write --weights-seed {}\n",
                 *s.seed, *s.seed);
    } else {
      params->seed = *s.seed;
    }
  }
  return weights_seed;
}

std::string read_prompt_text(const std::string& prompt, const std::string& file) {
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw Error(fmt::format("-f {}: cannot open the file: {}", file, std::strerror(errno)),
                  "give a readable text file");
    }
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) throw Error(fmt::format("-f {}: read error", file));
    return s.str();
  }
  if (prompt == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (std::cin.bad()) throw Error("-p -: could not read the prompt from stdin");
    return text;
  }
  return prompt;
}

Session::Session(const ModelOptions& model, const sampling::SamplingParams& sampling,
                 uint64_t weights_seed)
    : opts_(model), weights_seed_(weights_seed), sampler_(sampling) {
  if (opts_.model.empty() == opts_.synthetic.empty()) {
    throw Error("give exactly one of -m FILE and --synthetic SHAPE",
                "e.g. -m model.gptoss, or --synthetic tiny for random weights");
  }
  decode_.experts = parse_expert_mode(opts_.experts);
  decode_.num_threads = opts_.threads;
  decode_.keep_logits = opts_.keep_logits;
  decode_.synthetic_formats = parse_weight_formats(opts_.attn.empty() ? "bf16" : opts_.attn,
                                                   opts_.lm_head.empty() ? "bf16" : opts_.lm_head);

  // Backend: auto picks the GPU when one is usable.
  backend_ = opts_.backend;
  if (backend_ == "auto") {
    std::string why;
    if (gpu::available(&why)) {
      backend_ = "cuda";
    } else {
      backend_ = "cpu";
      fmt::print(stderr, "note: no usable GPU ({}); using the CPU reference\n", why);
    }
  }
  if (opts_.prefill == "batched" && backend_ == "cpu") {
    throw Error("--prefill batched needs the CUDA backend (the CPU reference runs prompt positions "
                "one at a time)",
                "drop --prefill, or use --backend cuda");
  }
  if (!opts_.model.empty()) {
    archive_.emplace(MappedArchive::open(opts_.model));
    config_ = archive_->config();
    label_ = opts_.model;
    if (!opts_.attn.empty() || !opts_.lm_head.empty()) {
      throw Error("--attn and --lm-head choose the formats of --synthetic weights; an archive's "
                  "formats are fixed when it is converted",
                  "convert with gptoss convert ... --attn fp8 [--lm-head fp8]");
    }
    weights_ = archive_->weights();
  } else {
    config_ = ModelConfig::preset(opts_.synthetic);
    label_ = fmt::format("synthetic {} (weights seed {})", opts_.synthetic, weights_seed_);
  }
  // --max-context: resolve_max_context is the one range check; 0 (the model's length to the
  // libraries) is not a value the flag takes.
  try {
    if (opts_.max_context <= 0) throw Error("not positive");
    decode_.max_context = resolve_max_context(config_, opts_.max_context);
  } catch (const Error&) {
    throw Error(fmt::format("--max-context {} is outside 1..{} (the model's context length)",
                            opts_.max_context, config_.max_context));
  }
}

Session::~Session() = default;

std::vector<float> Session::logits() const {
  if (cpu_) return cpu_->logits();
  GPTOSS_CHECK(gpu_, "Session::logits: start() first");
  return gpu_->logits();
}

std::string Session::backend_label() const {
  return cpu_ ? fmt::format("cpu, {} threads", cpu_->pool().num_threads()) : backend_;
}

const tok::Tokenizer& Session::tokenizer() {
  if (!tokenizer_) {
    if (archive_ && archive_->tokenizer_format() != archive::TokenizerFormat::kNone) {
      const auto format = archive_->tokenizer_format() == archive::TokenizerFormat::kTiktoken
                              ? tok::kBlobFormatTiktoken
                              : tok::kBlobFormatHfJson;
      tokenizer_.emplace(tok::Tokenizer::from_blob(format, archive_->tokenizer_blob()));
    } else {
      tokenizer_.emplace(tok::Tokenizer::load_default());
    }
  }
  return *tokenizer_;
}

void Session::check_ids(const std::vector<int>& ids) const {
  for (int id : ids) {
    if (id < 0 || id >= config_.vocab_size) {
      throw Error(fmt::format("prompt token {} is outside the model's vocabulary ({} ids)", id,
                              config_.vocab_size),
                  "use ids below the vocabulary size");
    }
  }
}

void Session::set_sampling(const sampling::SamplingParams& params) {
  sampling::Sampler next(params);  // validates
  GPTOSS_CHECK(sampling_may_change_ || !step_ || params.greedy() == sampler_.params().greedy(),
               "Session::set_sampling: greediness changed without start(true)");
  sampler_ = next;
}

void Session::start(bool sampling_may_change) {
  sampling_may_change_ = sampling_may_change;
  // Synthetic weights for the CPU are generated only now that the request is known to be valid.
  if (!opts_.synthetic.empty() && backend_ == "cpu") {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig synth_config = config_;
    const uint64_t seed = weights_seed_;
    memory_ = std::make_unique<ref::MemoryModel>(
        synth_config, [&](const TensorSpec& spec, std::span<std::byte> out) {
          conv::synth_fill(synth_config, seed, spec, 0, out);
        },
        decode_.synthetic_formats);
    weights_ = memory_->weights();
    fmt::print(stderr, "{} generated in host memory in {:.1f} s\n", label_,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  // Greedy decoding takes the engine's argmax; sampling reads the logits (read per step when the
  // sampling may change).
  const bool start_greedy = sampler_.params().greedy() && !sampling_may_change;
  if (backend_ == "cpu") {
    cpu_ = std::make_unique<ref::Reference>(weights_, decode_);
    step_ = [this](int token, int pos, bool want_next) {
      if (pos != cpu_->position()) cpu_->rewind(pos);
      if (!want_next) {  // a prompt position before the last: no LM head
        cpu_->advance(token);
        return -1;
      }
      const int best = cpu_->step(token);
      return sampler_.params().greedy() ? best : sampler_.next(cpu_->logits());
    };
  } else {
    DecodeOptions d = decode_;
    d.keep_logits = d.keep_logits || !start_greedy;  // the device sampler reads them
    gpu_ = memory_ || archive_ ? std::make_unique<GpuEngine>(weights_, d)
                               : std::make_unique<GpuEngine>(config_, weights_seed_, d);
    if (!start_greedy) gpu_sampler_ = std::make_unique<GpuSampler>(config_.vocab_size);
    step_ = [this](int token, int pos, bool want_next) {
      if (!want_next) {  // a prompt position before the last: no LM head
        gpu_->advance(token, pos);
        return -1;
      }
      const int best = gpu_->step(token, pos);
      if (sampler_.params().greedy()) return best;
      return gpu_sampler_->sample(gpu_->device_logits(), sampler_.params(), sampler_.next_draw());
    };
  }
}

bool Session::batched_prefill() const {
  return gpu_ != nullptr && opts_.prefill != "decode" && !step_wrapped_;
}

void Session::prefill(const int* tokens, int count, int first_pos) {
  GPTOSS_CHECK(step_, "Session::prefill: start() first");
  if (count <= 0) return;
  if (batched_prefill()) {
    gpu_->prefill(tokens, count, first_pos);
    StopSignals::check("stopping");
    return;
  }
  for (int i = 0; i < count; ++i) {
    step(tokens[i], first_pos + i, /*want_next=*/false);
    StopSignals::check("stopping");
  }
}

int Session::extend(const std::vector<int>& tokens, ExtendInfo* info) {
  GPTOSS_CHECK(!tokens.empty(), "Session::extend: no tokens");
  if (static_cast<int>(tokens.size()) > max_context()) {
    throw Error(fmt::format("the conversation has {} tokens, more than the context of {}",
                            tokens.size(), max_context()),
                "start over (/reset) or raise --max-context");
  }
  size_t common = 0;
  while (common < cached_.size() && common < tokens.size() && cached_[common] == tokens[common]) {
    ++common;
  }
  if (common == tokens.size()) --common;  // the last token runs again: its step gives the next
  size_t start = common;
  // The sliding layers keep position p in ring slot p % W; the positions run after the shared
  // prefix, up to the cache's old end, overwrote the slots of positions p + W < old end. Steps
  // from `common` on read positions down to common - W + 1: re-run from there when any of those
  // was overwritten (the tokens are the same, so the rewritten K and V are the same).
  const bool diverged = cached_.size() > common + 1;
  const int64_t window = std::min(config_.sliding_window, max_context());
  const int64_t lo = std::max<int64_t>(0, int64_t(common) + 1 - window);
  const int64_t hi = int64_t(cached_.size()) - 1 - window;  // last overwritten position
  if (diverged && hi >= lo) start = size_t(lo);
  if (info) *info = {int(start), int(tokens.size() - start), diverged};
  cached_.resize(start);
  int next = -1;
  if (batched_prefill() && tokens.size() - start > 1) {
    // All but the last position in one batched prefill; cached_ grows only once it is done (an
    // error or a stop leaves the cache's contents past `start` unclaimed).
    const int count = int(tokens.size() - start) - 1;
    gpu_->prefill(tokens.data() + start, count, int(start));
    cached_.insert(cached_.end(), tokens.begin() + ptrdiff_t(start), tokens.end() - 1);
    StopSignals::check("stopping");
    start = tokens.size() - 1;
  }
  for (size_t i = start; i < tokens.size(); ++i) {
    next = step(tokens[i], int(i), i + 1 == tokens.size());
    cached_.push_back(tokens[i]);
    StopSignals::check("stopping");
  }
  return next;
}

}  // namespace gptoss::cli
