// tokenize_cli.cpp — `gptoss tokenize` and `gptoss detokenize` (host/cli/cli.h).
// tokenize: TEXT (or all of stdin, byte for byte) -> ids on one line; --harmony renders a one-turn
// conversation ready for the assistant. detokenize: ids (space- or comma-separated, args or
// stdin) -> the exact bytes. Invalid UTF-8 input is replaced by U+FFFD with a warning.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/bench_cli.h"  // add_tokenizer_bench_command
#include "host/cli/cli.h"
#include "host/error.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {


namespace {

struct TokenizeOptions {
  std::string text;
  bool harmony = false;
  std::string developer;
  std::string reasoning = "medium";
  std::string date;
  std::string tokenizer_path;
};

struct DetokenizeOptions {
  std::vector<std::string> ids;
  bool no_newline = false;
  std::string tokenizer_path;
};

std::string read_stdin() {
  std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return s;
}

tok::Tokenizer load_tokenizer(const std::string& path) {
  return path.empty() ? tok::Tokenizer::load_default() : tok::Tokenizer::from_file(path);
}

void run_tokenize(const TokenizeOptions& opt, bool text_given) {
  const tok::Tokenizer tokenizer = load_tokenizer(opt.tokenizer_path);
  const std::string text = text_given ? opt.text : read_stdin();
  const std::string_view what = text_given ? "TEXT" : "standard input";
  size_t num_replaced = 0;
  const std::string clean = tok::sanitize_utf8(text, &num_replaced);
  if (num_replaced > 0) {
    fmt::print(stderr,
               "warning: {} is not valid UTF-8: {} invalid byte sequence(s) replaced by U+FFFD\n",
               what, num_replaced);
  }
  std::vector<tok::TokenId> ids;
  if (opt.harmony) {
    tok::SystemOptions sys;
    sys.reasoning = tok::parse_reasoning_effort(opt.reasoning);
    sys.current_date = opt.date;
    ids = tok::render_prompt(tokenizer, clean, sys, opt.developer);
  } else {
    ids = tokenizer.encode(clean);
  }
  std::string line;
  line.reserve(ids.size() * 7);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line.push_back(' ');
    line += std::to_string(ids[i]);
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stdout);
}

std::vector<tok::TokenId> parse_ids(const std::vector<std::string>& args) {
  constexpr const char* kSeparators = ", \t\r\n";
  std::vector<tok::TokenId> ids;
  for (const std::string& arg : args) {
    for (size_t i = arg.find_first_not_of(kSeparators); i != std::string::npos;
         i = arg.find_first_not_of(kSeparators, i)) {
      const size_t end = std::min(arg.find_first_of(kSeparators, i), arg.size());
      const std::string word = arg.substr(i, end - i);
      i = end;
      if (word.find_first_not_of("0123456789") != std::string::npos) {
        throw Error(fmt::format("'{}' is not a token id", word),
                    "give non-negative integers separated by spaces or commas, e.g. "
                    "`gptoss detokenize 13225 11 2375`");
      }
      if (word.size() > 10 || std::stoull(word) > UINT32_MAX) {
        throw Error(fmt::format("token id {} is out of range (the vocabulary has {} ids: 0..{})",
                                word, tok::kVocabSize, tok::kVocabSize - 1),
                    "ids come from `gptoss tokenize`");
      }
      ids.push_back(tok::TokenId(std::stoull(word)));
    }
  }
  return ids;
}

void run_detokenize(const DetokenizeOptions& opt) {
  const tok::Tokenizer tokenizer = load_tokenizer(opt.tokenizer_path);
  const std::vector<tok::TokenId> ids =
      parse_ids(opt.ids.empty() ? std::vector<std::string>{read_stdin()} : opt.ids);
  for (tok::TokenId id : ids) tokenizer.check_id(id);
  std::string text = tokenizer.decode(ids);
  if (!opt.no_newline) text.push_back('\n');
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto topt = std::make_shared<TokenizeOptions>();
  auto* tcmd = app.add_subcommand(
      "tokenize", "Print the o200k_harmony ids of TEXT (or of all of stdin) on one line");
  tcmd->add_option("text", topt->text, "the text; read from standard input when omitted");
  tcmd->add_flag("--harmony", topt->harmony,
                 "render a harmony conversation whose single user message is TEXT, ready for "
                 "the assistant");
  tcmd->add_option("--developer", topt->developer,
                   "with --harmony: developer instructions (a developer message)");
  tcmd->add_option("--reasoning", topt->reasoning, "with --harmony: low|medium|high")
      ->check(CLI::IsMember({"low", "medium", "high"}))
      ->capture_default_str();
  tcmd->add_option("--date", topt->date,
                   "with --harmony: adds 'Current date: DATE' to the system message");
  tcmd->add_option("--tokenizer", topt->tokenizer_path,
                   "a .tiktoken ranks file or an HF tokenizer.json (default: the bundled ranks)");
  tcmd->callback([topt, tcmd] { run_tokenize(*topt, tcmd->count("text") > 0); });

  auto dopt = std::make_shared<DetokenizeOptions>();
  auto* dcmd = app.add_subcommand(
      "detokenize", "Print the text of token ids (space- or comma-separated; stdin if none)");
  dcmd->add_option("ids", dopt->ids, "token ids, e.g. 13225 11 2375 or 13225,11,2375");
  dcmd->add_flag("-n,--no-newline", dopt->no_newline, "do not print a newline after the text");
  dcmd->add_option("--tokenizer", dopt->tokenizer_path,
                   "a .tiktoken ranks file or an HF tokenizer.json (default: the bundled ranks)");
  dcmd->callback([dopt] { run_detokenize(*dopt); });

  add_tokenizer_bench_command(app);
}

}  // namespace gptoss::cli
