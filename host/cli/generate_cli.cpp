// generate_cli.cpp — `gptoss generate`: greedy decoding from token ids (--tokens) or a text prompt
// (-p, rendered as a harmony user message unless --raw) on the CPU reference or the GPU
// megakernel. The model comes from an archive (-m) or is generated from a seed (--synthetic).
// Output: generated ids (--tokens) or text (-p: the final channel on stdout, other channels on
// stderr); timings (prefill and decode tokens/s) on stderr.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "host/archive/archive.h"
#include "host/cli/cli.h"
#include "host/decode_options.h"
#include "host/error.h"
#include "host/gpu.h"
#include "host/interrupt.h"
#include "host/npy.h"
#include "host/reference/forward.h"
#include "host/reference/memory_model.h"
#include "host/runtime/engine.h"
#include "host/synth_weights.h"  // conv::synth_fill (CPU --synthetic)
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string synthetic;
  uint64_t seed = 1;
  std::string tokens;
  std::string prompt;
  std::string developer;
  std::string reasoning = "medium";
  std::string date;
  bool raw = false;
  bool hide_analysis = false;
  int num_tokens = 16;
  std::string backend = "auto";
  std::string experts = "bf16";
  std::string attn, lm_head;  // --synthetic: stored formats (empty = bf16)
  int max_context = 4096;
  int threads = 0;
  std::string logits_out;  // .npy of every step's logits
  std::string test_fault;  // hidden test hook: "kernel:POS" or "oom:POS"
};

// --test-fault KIND:POS: the decode step at position POS fails the way a GPU fault does, so the
// fault path (no token of the failed step printed, a clear message, exit code 1) is tested on
// any machine. The messages mirror host/gpu.cu's. KIND hang (CUDA backend only) is a real fault:
// the step runs with a grid-barrier spin cap of one poll, so the kernel traps with a hang report.
struct InjectedFault {
  bool oom = false;
  bool hang = false;
  int pos = -1;
};

std::optional<InjectedFault> parse_test_fault(const std::string& text) {
  if (text.empty()) return std::nullopt;
  InjectedFault f;
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  const char* num = colon == std::string::npos ? nullptr : text.c_str() + colon + 1;
  const auto [ptr, ec] = num ? std::from_chars(num, text.c_str() + text.size(), f.pos)
                             : std::from_chars_result{nullptr, std::errc::invalid_argument};
  if ((kind != "kernel" && kind != "oom" && kind != "hang") || ec != std::errc() || *ptr != '\0' ||
      f.pos < 0) {
    throw Error(fmt::format("--test-fault {}: expected kernel:POS, oom:POS or hang:POS", text));
  }
  f.oom = kind == "oom";
  f.hang = kind == "hang";
  return f;
}

[[noreturn]] void throw_injected_fault(const InjectedFault& f) {
  if (f.oom) {
    throw gpu::GpuError("CUDA error cudaErrorMemoryAllocation (out of memory) in "
                        "cudaLaunchCooperativeKernel (injected by --test-fault)",
                        gpu::kOutOfMemoryHint, Remedy::kLowerContext);
  }
  throw gpu::GpuError("CUDA error cudaErrorIllegalAddress (an illegal memory access was "
                      "encountered) in cudaDeviceSynchronize() (injected by --test-fault)",
                      gpu::kKernelFaultHint);
}

// "1, 2,3" -> {1, 2, 3}; names the first bad entry.
std::vector<int> parse_token_list(const std::string& text) {
  std::vector<int> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string_view item(text.data() + start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || v < 0) {
      throw Error(fmt::format("--tokens: '{}' is not a token id", item),
                  "give comma-separated non-negative integers, e.g. --tokens 1,2,3");
    }
    ids.push_back(v);
    start = end + 1;
  }
  return ids;
}

// Where the weights come from: an archive's mapping, or host memory for --synthetic on the CPU.
struct ModelSource {
  std::optional<MappedArchive> archive;
  std::unique_ptr<ref::MemoryModel> memory;
  ModelWeights weights;  // bound unless the GPU generates synthetic weights itself
  ModelConfig config;
  std::string label;
};

tok::Tokenizer load_tokenizer(const ModelSource& src) {
  if (src.archive && src.archive->tokenizer_format() != archive::TokenizerFormat::kNone) {
    const auto format = src.archive->tokenizer_format() == archive::TokenizerFormat::kTiktoken
                            ? tok::kBlobFormatTiktoken
                            : tok::kBlobFormatHfJson;
    return tok::Tokenizer::from_blob(format, src.archive->tokenizer_blob());
  }
  return tok::Tokenizer::load_default();
}

void run_generate(const GenerateOptions& o) {
  if (o.model.empty() == o.synthetic.empty()) {
    throw Error("generate needs exactly one of -m FILE and --synthetic SHAPE",
                "e.g. gptoss generate -m model.gptoss --tokens 1,2,3");
  }
  if (o.tokens.empty() == o.prompt.empty()) {
    throw Error("generate needs exactly one of --tokens IDS and -p/--prompt TEXT",
                "e.g. --tokens 1,2,3 or -p \"What is 2 + 2?\"");
  }
  if (o.num_tokens < 0) throw Error(fmt::format("-n {}: must be >= 0", o.num_tokens));
  // The decode options, parsed once and passed unchanged to the backend (--experts is already
  // restricted to bf16|fp8 by CLI11; --max-context is checked against the model below).
  DecodeOptions decode;
  decode.experts = parse_expert_mode(o.experts);
  decode.num_threads = o.threads;
  decode.keep_logits = !o.logits_out.empty();
  decode.synthetic_formats = parse_weight_formats(o.attn.empty() ? "bf16" : o.attn,
                                                  o.lm_head.empty() ? "bf16" : o.lm_head);

  // Backend: auto picks the GPU when one is usable.
  std::string backend = o.backend;
  if (backend == "auto") {
    std::string why;
    if (gpu::available(&why)) {
      backend = "cuda";
    } else {
      backend = "cpu";
      fmt::print(stderr, "note: no usable GPU ({}); using the CPU reference\n", why);
    }
  }

  ModelSource src;
  if (!o.model.empty()) {
    src.archive.emplace(MappedArchive::open(o.model));
    src.config = src.archive->config();
    src.label = o.model;
    if (!o.attn.empty() || !o.lm_head.empty()) {
      throw Error("--attn and --lm-head choose the formats of --synthetic weights; an archive's "
                  "formats are fixed when it is converted",
                  "convert with gptoss convert ... --attn fp8 [--lm-head fp8]");
    }
    src.weights = src.archive->weights();
  } else {
    src.config = ModelConfig::preset(o.synthetic);
    src.label = fmt::format("synthetic {} (seed {})", o.synthetic, o.seed);
  }
  const ModelConfig& config = src.config;

  // The prompt.
  std::optional<tok::Tokenizer> tokenizer;
  std::vector<int> prompt;
  if (!o.tokens.empty()) {
    prompt = parse_token_list(o.tokens);
  } else {
    tokenizer.emplace(load_tokenizer(src));
    std::vector<tok::TokenId> ids;
    if (o.raw) {
      ids = tokenizer->encode(o.prompt);
    } else {
      tok::SystemOptions system;
      system.reasoning = tok::parse_reasoning_effort(o.reasoning);
      system.current_date = o.date;
      ids = tok::render_prompt(*tokenizer, o.prompt, system, o.developer);
    }
    for (tok::TokenId id : ids) prompt.push_back(static_cast<int>(id));
  }
  if (prompt.empty()) throw Error("the prompt is empty", "give at least one token id");
  for (int id : prompt) {
    if (id >= config.vocab_size) {
      throw Error(fmt::format("prompt token {} is outside the model's vocabulary ({} ids)", id,
                              config.vocab_size),
                  "use ids below the vocabulary size");
    }
  }
  // --max-context: resolve_max_context is the one range check; 0 (the model's length to the
  // libraries) is not a value the flag takes.
  try {
    if (o.max_context <= 0) throw Error("not positive");
    decode.max_context = resolve_max_context(config, o.max_context);
  } catch (const Error&) {
    throw Error(fmt::format("--max-context {} is outside 1..{} (the model's context length)",
                            o.max_context, config.max_context));
  }
  if (static_cast<int>(prompt.size()) > o.max_context) {
    throw Error(fmt::format("the prompt has {} tokens, more than --max-context {}", prompt.size(),
                            o.max_context),
                "shorten the prompt or raise --max-context");
  }
  const std::optional<InjectedFault> fault = parse_test_fault(o.test_fault);
  if (fault && fault->hang && backend == "cpu") {
    throw Error("--test-fault hang needs the CUDA backend (it makes a grid barrier of the kernel "
                "give up)");
  }

  // Synthetic weights for the CPU are generated only now that the request is known to be valid.
  if (!o.synthetic.empty() && backend == "cpu") {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig synth_config = src.config;
    const uint64_t seed = o.seed;
    src.memory = std::make_unique<ref::MemoryModel>(
        synth_config,
        [&](const TensorSpec& spec, std::span<std::byte> out) {
          conv::synth_fill(synth_config, seed, spec, 0, out);
        },
        decode.synthetic_formats);
    src.weights = src.memory->weights();
    fmt::print(stderr, "{} generated in host memory in {:.1f} s\n", src.label,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // One decode step: runs `token` at `pos`, returns the greedy next token.
  std::function<int(int, int)> step;
  std::unique_ptr<ref::Reference> cpu;
  std::unique_ptr<GpuEngine> gpu_engine;
  if (backend == "cpu") {
    cpu = std::make_unique<ref::Reference>(src.weights, decode);
    step = [&](int token, int) { return cpu->step(token); };
  } else {
    gpu_engine = src.memory || src.archive
                     ? std::make_unique<GpuEngine>(src.weights, decode)
                     : std::make_unique<GpuEngine>(config, o.seed, decode);
    step = [&](int token, int pos) { return gpu_engine->step(token, pos); };
  }
  // --logits-out: one row per step (prompt positions, then each generated token's step).
  std::unique_ptr<NpyRowWriter> logits_out;
  if (!o.logits_out.empty()) {
    logits_out = std::make_unique<NpyRowWriter>(o.logits_out, config.vocab_size);
    step = [inner = std::move(step), &logits_out, &cpu, &gpu_engine](int token, int pos) {
      const int next = inner(token, pos);
      if (cpu) {
        logits_out->append(cpu->logits().data());
      } else {
        const std::vector<float> l = gpu_engine->logits();
        logits_out->append(l.data());
      }
      return next;
    };
  }
  if (fault && fault->hang) {
    step = [inner = std::move(step), f = *fault, &gpu_engine](int token, int pos) {
      if (pos == f.pos) gpu_engine->set_barrier_spin_cap(1);
      return inner(token, pos);
    };
  } else if (fault) {
    step = [inner = std::move(step), f = *fault](int token, int pos) {
      if (pos == f.pos) throw_injected_fault(f);
      return inner(token, pos);
    };
  }
  const std::string backend_label =
      backend == "cpu" ? fmt::format("cpu, {} threads", cpu->pool().num_threads()) : backend;
  const WeightFormats& formats = src.archive ? src.archive->formats() : decode.synthetic_formats;
  fmt::print(stderr, "{}: {} prompt tokens, attention {}, lm head {}, {} experts, backend {}\n",
             src.label, prompt.size(), weight_format_name(formats.attn),
             weight_format_name(formats.lm_head), expert_mode_name(decode.experts), backend_label);

  // Text output: harmony channels (final on stdout, the others on stderr), or --raw bytes.
  std::optional<tok::HarmonyStream> harmony;
  std::optional<tok::StreamDecoder> raw_text;
  if (tokenizer && o.raw) raw_text.emplace(*tokenizer);
  if (tokenizer && !o.raw) harmony.emplace(*tokenizer);
  std::string channel;
  std::vector<int> generated;
  bool line_open = false;  // stdout has output without its final newline
  auto emit = [&](int id) {  // returns false when generation must stop
    generated.push_back(id);
    if (raw_text) {
      fmt::print("{}", raw_text->push(static_cast<tok::TokenId>(id)));
      std::fflush(stdout);
      line_open = true;
      return true;
    }
    if (!harmony) {  // ids, streamed as they are generated
      fmt::print("{}{}", generated.size() > 1 ? "," : "", id);
      std::fflush(stdout);
      line_open = true;
      return true;
    }
    const tok::HarmonyDelta d = harmony->push(static_cast<tok::TokenId>(id));
    if (d.text.empty()) return !d.done;
    if (d.channel == "final") {
      fmt::print("{}", d.text);
      std::fflush(stdout);
      line_open = true;
    } else if (!o.hide_analysis) {
      if (d.channel != channel) fmt::print(stderr, "\n[{}]\n", d.channel.empty() ? "no channel" : d.channel);
      fmt::print(stderr, "{}", d.text);
    }
    channel = d.channel;
    return !d.done;
  };

  // Completes the output: pending text, the final newline.
  auto finish_output = [&] {
    if (raw_text) {
      fmt::print("{}\n", raw_text->flush());
    } else if (harmony) {
      harmony->finish();
      fmt::print("\n");
    } else {
      fmt::print("\n");
    }
    std::fflush(stdout);
    line_open = false;
  };

  // Every step either returns a valid token or throws before anything of it is printed (a
  // kernel fault, GPU out of memory, a NaN logit), so the output is always the exact prefix of
  // the generation. Ctrl-C (SIGINT/SIGTERM) is honoured between steps: the output so far is
  // completed and the run ends with exit code 128 + signal.
  using Clock = std::chrono::steady_clock;
  const StopSignals signals;
  int pos = 0, next = -1;
  auto run_step = [&](int token) {
    next = step(token, pos);
    ++pos;
    StopSignals::check("stopping");
  };
  const auto t0 = Clock::now();
  auto t1 = t0;
  bool context_full = false;
  try {
    for (int id : prompt) run_step(id);
    t1 = Clock::now();
    if (o.num_tokens > 0 && emit(next)) {
      while (static_cast<int>(generated.size()) < o.num_tokens) {
        if (pos >= o.max_context) {
          context_full = true;
          break;
        }
        run_step(next);
        if (!emit(next)) break;
      }
    }
  } catch (const Interrupted& e) {
    finish_output();
    throw Interrupted(e.signal(), fmt::format("interrupted by {} after {} generated tokens",
                                              signal_name(e.signal()), generated.size()));
  } catch (const Error& e) {
    if (line_open) fmt::print("\n");
    std::fflush(stdout);
    throw Error(fmt::format("{}\ndecoding stopped at position {}: the {} tokens printed before it "
                            "are complete, nothing of the failed step was printed",
                            e.what(), pos, generated.size()),
                e.hint(), e.remedy());
  }
  if (logits_out) {
    logits_out->close();
    fmt::print(stderr, "logits: {} rows of {} float32 written to {}\n", logits_out->rows(),
               config.vocab_size, o.logits_out);
  }
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
  finish_output();
  if (context_full) {
    fmt::print(stderr, "note: stopped after {} tokens at the context limit (--max-context {})\n",
               generated.size(), o.max_context);
  }
  const size_t decode_steps = generated.empty() ? 0 : generated.size() - 1;
  if (gpu_engine && gpu_engine->upload_stats().bytes > 0) {
    const UploadStats& up = gpu_engine->upload_stats();
    fmt::print(stderr, "load: {:.2f} GB of weights to the GPU in {:.2f} s ({:.2f} GB/s)\n",
               up.bytes / 1e9, up.seconds, up.gb_per_s());
  }
  fmt::print(stderr, "prefill: {} tokens in {:.3f} s ({:.2f} tokens/s)\n", prompt.size(),
             prefill_s, prompt.size() / prefill_s);
  if (decode_steps > 0) {
    fmt::print(stderr, "decode: {} tokens in {:.3f} s ({:.2f} tokens/s)\n", decode_steps,
               decode_s, decode_steps / decode_s);
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto opts = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "greedy decoding from token ids or a prompt");
  cmd->add_option("-m,--model", opts->model, "a .gptoss archive (gptoss convert)");
  cmd->add_option("--synthetic", opts->synthetic, "synthetic weights instead: tiny, 20b or 120b");
  cmd->add_option("--seed", opts->seed, "seed of the synthetic weights")->capture_default_str();
  cmd->add_option("--tokens", opts->tokens, "prompt as comma-separated token ids, e.g. 1,2,3");
  cmd->add_option("-p,--prompt", opts->prompt, "prompt text, sent as a harmony user message");
  cmd->add_option("--developer", opts->developer, "harmony developer instructions (with -p)");
  cmd->add_option("--reasoning", opts->reasoning, "harmony reasoning effort: low|medium|high")
      ->capture_default_str();
  cmd->add_option("--date", opts->date, "harmony system message date, YYYY-MM-DD (default: none)");
  cmd->add_flag("--raw", opts->raw, "with -p: encode the text as is (no harmony), print raw text");
  cmd->add_flag("--hide-analysis", opts->hide_analysis, "with -p: do not print non-final channels");
  cmd->add_option("-n", opts->num_tokens, "number of tokens to generate")->capture_default_str();
  cmd->add_option("--backend", opts->backend, "auto (GPU if usable), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--experts", opts->experts, "expert activations: bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}))
      ->capture_default_str();
  cmd->add_option("--attn", opts->attn,
                  "with --synthetic: attention weights bf16 (default) or fp8 (E4M3, row scales)")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--lm-head", opts->lm_head, "with --synthetic: LM head weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--max-context", opts->max_context, "KV cache capacity in positions")
      ->capture_default_str();
  cmd->add_option("--threads", opts->threads, "CPU backend threads (0: all cores)")
      ->capture_default_str();
  cmd->add_option("--logits-out", opts->logits_out,
                  "write every step's logits to FILE.npy (float32 [steps, vocab], NumPy format)");
  // Test hook (hidden): the decode step at POS fails like a GPU kernel fault or out-of-memory.
  cmd->add_option("--test-fault", opts->test_fault)->group("");
  cmd->callback([opts] { run_generate(*opts); });
}

}  // namespace gptoss::cli
