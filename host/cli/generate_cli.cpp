// generate_cli.cpp — `gptoss generate`: decoding (greedy, or sampled with --temp/--top-k/--top-p/
// --min-p/--seed) from token ids (--tokens) or a text prompt (-p, -p - for stdin, -f FILE; rendered
// as a harmony user message unless --raw) on the CPU reference or the GPU megakernel. The model
// comes from an archive (-m) or is generated from a seed (--synthetic, --weights-seed); the model
// loading and decode steps are host/cli/session.h's, shared with `chat`.
// Output: generated ids (--tokens) or text (-p: the final channel on stdout, other channels on
// stderr; raw text with a note when the reply has no harmony structure), or one JSON object
// (--json); timings (prefill and decode tokens/s) on stderr.
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

#include <map>

#include <nlohmann/json.hpp>

#include "host/archive/archive.h"
#include "host/cli/arg_checks.h"
#include "host/cli/cli.h"
#include "host/cli/session.h"
#include "host/cli/stop_text.h"
#include "host/error.h"
#include "host/gpu.h"
#include "host/interrupt.h"
#include "host/npy.h"
#include "host/runtime/engine.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {
namespace {

struct GenerateOptions {
  ModelOptions model;        // -m/--synthetic/--weights-seed/--backend/--experts/--max-context/--threads
  SamplingOptions sampling;  // --temp/--top-k/--top-p/--min-p/--seed
  std::string tokens;
  std::string prompt;
  std::string prompt_file;
  std::string system;
  std::string developer;
  std::string reasoning = "medium";
  std::string date;
  std::vector<std::string> stop;
  bool raw = false;
  bool hide_analysis = false;
  bool json = false;
  int num_tokens = 16;
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

void run_generate(const GenerateOptions& o) {
  const bool text_prompt = !o.prompt.empty() || !o.prompt_file.empty();
  if (o.tokens.empty() == !text_prompt || (!o.prompt.empty() && !o.prompt_file.empty())) {
    throw Error("generate needs exactly one of --tokens IDS, -p/--prompt TEXT (- for stdin) and "
                "-f FILE",
                "e.g. --tokens 1,2,3 or -p \"What is 2 + 2?\"");
  }
  if (o.num_tokens < 0) throw Error(fmt::format("-n {}: must be >= 0", o.num_tokens));
  if (!o.stop.empty() && !text_prompt) {
    throw Error("--stop needs a text prompt (-p or -f): with --tokens the output is ids",
                "stop on a token with -n, or give the prompt as text");
  }
  for (const std::string& s : o.stop) {
    if (s.empty()) throw Error("--stop \"\": a stop string must not be empty");
  }
  if (!o.system.empty() && (o.raw || !text_prompt)) {
    throw Error("--system is part of the harmony prompt: it needs -p or -f without --raw");
  }
  // The sampling and the seeds (resolve_seeds has the rule for the old --seed), then the model
  // options, parsed once and passed unchanged to the backend (--experts is already restricted to
  // bf16|fp8 by CLI11; --max-context is checked against the model by the session).
  sampling::SamplingParams sampling_params;
  const uint64_t weights_seed = resolve_seeds(o.model, o.sampling, &sampling_params);
  if (o.model.model.empty() == o.model.synthetic.empty()) {
    throw Error("generate needs exactly one of -m FILE and --synthetic SHAPE",
                "e.g. gptoss generate -m model.gptoss --tokens 1,2,3");
  }
  ModelOptions model = o.model;
  model.keep_logits = model.keep_logits || !o.logits_out.empty();
  Session session(model, sampling_params, weights_seed);
  const int max_context = session.max_context();

  // The prompt.
  const tok::Tokenizer* tokenizer = nullptr;
  std::vector<int> prompt;
  if (!o.tokens.empty()) {
    prompt = parse_token_list(o.tokens);
  } else {
    const std::string text = read_prompt_text(o.prompt, o.prompt_file);
    tokenizer = &session.tokenizer();
    std::vector<tok::TokenId> ids;
    if (o.raw) {
      ids = tokenizer->encode(text);
    } else {
      tok::SystemOptions system;
      system.reasoning = tok::parse_reasoning_effort(o.reasoning);
      system.current_date = o.date;
      if (!o.system.empty()) system.model_identity = o.system;
      ids = tok::render_prompt(*tokenizer, text, system, o.developer);
    }
    for (tok::TokenId id : ids) prompt.push_back(static_cast<int>(id));
    check_prompt_vocab(*tokenizer, prompt, session.config(), session.label());  // host/cli/arg_checks.h
  }
  if (prompt.empty()) throw Error("the prompt is empty", "give at least one token id");
  session.check_ids(prompt);
  if (static_cast<int>(prompt.size()) > max_context) {
    throw Error(fmt::format("the prompt has {} tokens, more than --max-context {}", prompt.size(),
                            max_context),
                "shorten the prompt or raise --max-context");
  }
  const std::optional<InjectedFault> fault = parse_test_fault(o.test_fault);
  if (fault && fault->hang && session.backend() == "cpu") {
    throw Error("--test-fault hang needs the CUDA backend (it makes a grid barrier of the kernel "
                "give up)");
  }

  // The weights and the backend; one decode step runs `token` at `pos` and returns the next.
  session.start();
  // --logits-out: one row per step (every prompt position, then each generated token's step), so
  // prompt positions run the LM head too.
  std::unique_ptr<NpyRowWriter> logits_out;
  if (!o.logits_out.empty()) {
    logits_out = std::make_unique<NpyRowWriter>(o.logits_out, session.config().vocab_size);
    session.wrap_step([&logits_out, &session](StepFn inner) -> StepFn {
      return [inner = std::move(inner), &logits_out, &session](int token, int pos, bool want) {
        const int next = inner(token, pos, true);
        const std::vector<float> l = session.logits();
        logits_out->append(l.data());
        return want ? next : -1;
      };
    });
  }
  if (fault && fault->hang) {
    session.wrap_step([f = *fault, &session](StepFn inner) -> StepFn {
      return [inner = std::move(inner), f, &session](int token, int pos, bool want) {
        if (pos == f.pos) session.gpu_engine()->set_barrier_spin_cap(1);
        return inner(token, pos, want);
      };
    });
  } else if (fault) {
    session.wrap_step([f = *fault](StepFn inner) -> StepFn {
      return [inner = std::move(inner), f](int token, int pos, bool want) {
        if (pos == f.pos) throw_injected_fault(f);
        return inner(token, pos, want);
      };
    });
  }
  fmt::print(stderr, "{}: {} prompt tokens, {} experts, {}, backend {}\n", session.label(),
             prompt.size(), o.model.experts, sampling::describe(session.sampling()),
             session.backend_label());

  // Text output: harmony channels (final on stdout, the others on stderr), or --raw bytes; with
  // --json nothing streams and the text is collected per channel.
  std::optional<tok::HarmonyStream> harmony;
  std::optional<tok::StreamDecoder> raw_text;
  if (tokenizer && o.raw) raw_text.emplace(*tokenizer);
  if (tokenizer && !o.raw) harmony.emplace(*tokenizer);
  std::map<std::string, StopText> stops;  // per channel ("" for --raw)
  std::map<std::string, std::string> channel_text;
  bool stopped_by_text = false;
  bool harmony_text = false;  // the reply had harmony content (a message body) at all
  std::string channel;
  std::vector<int> generated;
  bool line_open = false;  // stdout has output without its final newline
  // Prints `text` of channel `ch` (or collects it for --json).
  auto print_text = [&](const std::string& ch, const std::string& text) {
    if (text.empty()) return;
    channel_text[ch] += text;
    if (o.json) return;
    if (ch == "final" || raw_text) {
      fmt::print("{}", text);
      std::fflush(stdout);
      line_open = true;
    } else if (!o.hide_analysis) {
      if (ch != channel) fmt::print(stderr, "\n[{}]\n", ch.empty() ? "no channel" : ch);
      fmt::print(stderr, "{}", text);
    }
    channel = ch;
  };
  auto stop_filter = [&](const std::string& ch, const std::string& text) {
    auto it = stops.try_emplace(ch, o.stop).first;
    print_text(ch, it->second.push(text));
    if (it->second.matched()) stopped_by_text = true;
  };
  auto emit = [&](int id) {  // returns false when generation must stop
    generated.push_back(id);
    if (raw_text) {
      stop_filter("", raw_text->push(static_cast<tok::TokenId>(id)));
      return !stopped_by_text;
    }
    if (!harmony) {  // ids, streamed as they are generated
      if (!o.json) {
        fmt::print("{}{}", generated.size() > 1 ? "," : "", id);
        std::fflush(stdout);
        line_open = true;
      }
      return true;
    }
    const tok::HarmonyDelta d = harmony->push(static_cast<tok::TokenId>(id));
    if (harmony->in_content() || !harmony->messages().empty()) harmony_text = true;
    if (d.text.empty()) return !d.done;
    stop_filter(d.channel, d.text);
    return !d.done && !stopped_by_text;
  };

  // Completes the output: text held back for --stop, pending text, the final newline; a reply
  // without harmony structure (a synthetic model's: no channel header ever) as raw text.
  bool unstructured = false;
  auto finish_output = [&] {
    if (!stopped_by_text) {
      if (raw_text) stop_filter("", raw_text->flush());
      for (auto& [ch, st] : stops) print_text(ch, st.flush());
    }
    if (harmony) {
      harmony->finish();
      if (!harmony_text && !generated.empty()) {
        unstructured = true;
        std::vector<tok::TokenId> ids(generated.begin(), generated.end());
        const std::string text = tokenizer->decode(ids);
        channel_text["raw"] = text;
        if (!o.json) fmt::print("{}", text);
      }
    }
    if (!o.json) fmt::print("\n");
    std::fflush(stdout);
    line_open = false;
    if (unstructured) {
      fmt::print(stderr, "note: the reply has no harmony structure (no channel or message header; "
                         "expected of synthetic weights), so it is printed as raw text\n");
    }
  };

  // Every step either returns a valid token or throws before anything of it is printed (a
  // kernel fault, GPU out of memory, a NaN logit), so the output is always the exact prefix of
  // the generation. Ctrl-C (SIGINT/SIGTERM) is honoured between steps: the output so far is
  // completed and the run ends with exit code 128 + signal.
  using Clock = std::chrono::steady_clock;
  const StopSignals signals;
  int pos = 0, next = -1;
  auto run_step = [&](int token, bool want_next) {
    next = session.step(token, pos, want_next);
    ++pos;
    StopSignals::check("stopping");
  };
  const auto t0 = Clock::now();
  auto t1 = t0;
  bool context_full = false;
  std::string finish_reason = "length";
  auto json_report = [&](double prefill_s, double decode_s) {
    nlohmann::ordered_json j;
    j["prompt_ids"] = prompt;
    j["generated_ids"] = generated;
    j["text"] = channel_text;
    j["harmony"] = harmony.has_value() && !unstructured;
    j["finish_reason"] = finish_reason;
    j["sampling"] = sampling::describe(session.sampling());
    j["backend"] = session.backend();
    const size_t steps = generated.empty() ? 0 : generated.size() - 1;
    j["prefill"] = {{"tokens", prompt.size()}, {"seconds", prefill_s},
                    {"path", session.batched_prefill() ? "batched" : "decode"},
                    {"tokens_per_s", prefill_s > 0 ? prompt.size() / prefill_s : 0.0}};
    j["decode"] = {{"tokens", steps}, {"seconds", decode_s},
                   {"tokens_per_s", decode_s > 0 ? steps / decode_s : 0.0}};
    fmt::print("{}\n", j.dump());
    std::fflush(stdout);
  };
  try {
    // Every prompt position but the last without the LM head (batched on the GPU unless
    // --prefill decode); the last one's step gives the first token.
    const int before_last = int(prompt.size()) - 1;
    if (session.batched_prefill()) {
      session.prefill(prompt.data(), before_last, 0);
      pos = before_last;
    } else {
      for (int i = 0; i < before_last; ++i) run_step(prompt[size_t(i)], false);  // errors name the position
    }
    run_step(prompt.back(), true);
    t1 = Clock::now();
    if (o.num_tokens > 0 && emit(next)) {
      while (static_cast<int>(generated.size()) < o.num_tokens) {
        if (pos >= max_context) {
          context_full = true;
          break;
        }
        run_step(next, true);
        if (!emit(next)) break;
      }
    }
  } catch (const Interrupted& e) {
    finish_output();
    if (o.json) {
      finish_reason = "interrupted";
      json_report(std::chrono::duration<double>(t1 - t0).count(),
                  std::chrono::duration<double>(Clock::now() - t1).count());
    }
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
               session.config().vocab_size, o.logits_out);
  }
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
  if (stopped_by_text) {
    finish_reason = "stop_text";
  } else if (harmony && harmony->done()) {
    finish_reason = harmony->stop_reason() == tok::StopReason::kCall ? "call" : "return";
  } else if (context_full) {
    finish_reason = "context_full";
  }
  finish_output();
  if (o.json) json_report(prefill_s, decode_s);
  if (context_full) {
    fmt::print(stderr, "note: stopped after {} tokens at the context limit (--max-context {})\n",
               generated.size(), max_context);
  }
  const size_t decode_steps = generated.empty() ? 0 : generated.size() - 1;
  if (GpuEngine* gpu_engine = session.gpu_engine(); gpu_engine && gpu_engine->upload_stats().bytes > 0) {
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
  CLI::App* cmd = app.add_subcommand("generate", "decoding (greedy or sampled) from token ids or a prompt");
  add_model_options(cmd, opts->model);
  add_sampling_options(cmd, opts->sampling, /*default_temp=*/0.0f);
  cmd->add_option("--tokens", opts->tokens, "prompt as comma-separated token ids, e.g. 1,2,3");
  cmd->add_option("-p,--prompt", opts->prompt, "prompt text, sent as a harmony user message; - reads stdin");
  cmd->add_option("-f,--file", opts->prompt_file, "read the prompt text from FILE");
  cmd->add_option("--system", opts->system,
                  "the harmony system message's first line (default: \"You are ChatGPT, ...\")");
  cmd->add_option("--developer", opts->developer, "harmony developer instructions (with -p)");
  cmd->add_option("--reasoning", opts->reasoning, "harmony reasoning effort: low|medium|high")
      ->capture_default_str();
  cmd->add_option("--date", opts->date, "harmony system message date, YYYY-MM-DD (default: none)");
  cmd->add_option("--stop", opts->stop, "stop when the generated text contains TEXT (repeatable)");
  cmd->add_flag("--raw", opts->raw, "with -p: encode the text as is (no harmony), print raw text");
  cmd->add_flag("--hide-analysis", opts->hide_analysis, "with -p: do not print non-final channels");
  cmd->add_flag("--json", opts->json,
                "print one JSON object: prompt and generated ids, text per channel, finish "
                "reason, timings");
  cmd->add_option("-n", opts->num_tokens, "number of tokens to generate")->capture_default_str();
  cmd->add_option("--logits-out", opts->logits_out,
                  "write every step's logits to FILE.npy (float32 [steps, vocab], NumPy format)");
  // Test hook (hidden): the decode step at POS fails like a GPU kernel fault or out-of-memory.
  cmd->add_option("--test-fault", opts->test_fault)->group("");
  cmd->callback([opts, cmd] {
    check_generate_args(*cmd);  // host/cli/arg_checks.h: what CLI11 cannot check
    run_generate(*opts);
  });
}

}  // namespace gptoss::cli
