// arg_checks.cpp — see arg_checks.h.
#include "host/cli/arg_checks.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string_view>

#include "host/error.h"
#include "host/model_config.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {
namespace {

// An option absent from the subcommand (renamed or removed there) counts as not given.
bool given(const CLI::App& app, const std::string& name) {
  const CLI::Option* opt = app.get_option_no_throw(name);
  return opt != nullptr && opt->count() > 0;
}

std::string value(const CLI::App& app, const std::string& name) {
  return app.get_option(name)->as<std::string>();
}

void warn_invalid_utf8(std::string_view text, std::string_view what) {
  size_t replaced = 0;
  (void)tok::sanitize_utf8(text, &replaced);
  if (replaced > 0) {
    fmt::print(stderr,
               "warning: {} is not valid UTF-8: {} invalid byte sequence{} replaced by U+FFFD\n",
               what, replaced, replaced == 1 ? "" : "s");
  }
}

}  // namespace

void check_generate_args(const CLI::App& g) {
  const bool prompt = given(g, "--prompt"), tokens = given(g, "--tokens");
  if (prompt && value(g, "--prompt").empty()) {
    throw Error("-p/--prompt is empty",
                "give the prompt text, e.g. -p \"What is 2 + 2?\" (or token ids with --tokens)");
  }
  if (tokens && value(g, "--tokens").empty()) {
    throw Error("--tokens is empty", "give comma-separated token ids, e.g. --tokens 1,2,3");
  }
  if (given(g, "--threads")) {
    const int threads = g.get_option("--threads")->as<int>();
    if (threads < 0) {
      throw Error(fmt::format("--threads {}: must be >= 0", threads),
                  "give a thread count, or 0 for all cores");
    }
  }
  if (given(g, "--reasoning")) (void)tok::parse_reasoning_effort(value(g, "--reasoning"));
  if (tokens && !prompt) {
    for (const char* name : {"--reasoning", "--developer", "--date", "--raw", "--hide-analysis"}) {
      if (given(g, name)) {
        fmt::print(stderr, "warning: {} applies to text prompts (-p) only; ignored with --tokens\n",
                   name);
      }
    }
  }
  if (prompt) warn_invalid_utf8(value(g, "--prompt"), "the prompt (-p)");
  if (given(g, "--developer")) warn_invalid_utf8(value(g, "--developer"), "--developer");
}

std::string vocab_mismatch(int tokenizer_vocab, int model_vocab) {
  if (tokenizer_vocab == model_vocab) return {};
  return fmt::format("the tokenizer has {} token ids but the model's vocabulary is {}",
                     tokenizer_vocab, model_vocab);
}

void check_prompt_vocab(const tok::Tokenizer& tokenizer, std::span<const int> prompt,
                        const ModelConfig& config, const std::string& label) {
  const int tok_vocab = static_cast<int>(tokenizer.vocab_size());
  const std::string mismatch = vocab_mismatch(tok_vocab, config.vocab_size);
  for (int id : prompt) {
    if (id < config.vocab_size) continue;
    throw Error(fmt::format("{}: {}: the prompt encodes to id {}, which the model does not have "
                            "(the archive's tokenizer does not match its model)",
                            label, mismatch.empty() ? "tokenizer and model disagree" : mismatch,
                            id),
                fmt::format("use --tokens with ids below {}, or re-convert with the model's own "
                            "tokenizer (--tokenizer FILE) or --no-tokenizer",
                            config.vocab_size));
  }
  if (tok_vocab < config.vocab_size) {
    fmt::print(stderr, "warning: {}: {}; generated ids >= {} cannot be printed as text\n", label,
               mismatch, tok_vocab);
  }
}

}  // namespace gptoss::cli
