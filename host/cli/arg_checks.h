// arg_checks.h — checks of command-line input that CLI11 cannot express, kept out of the
// subcommands' own files: generate's prompt and option combinations (an empty -p, --threads -1,
// harmony options with --tokens, invalid UTF-8), and the tokenizer's vocabulary against the
// model's (generate and convert). Errors are gptoss::Error (exit code 1, main.cpp); warnings go
// to stderr as "warning: ...".
#pragma once

#include <span>
#include <string>

namespace CLI {
class App;
}

namespace gptoss {
struct ModelConfig;
namespace tok {
class Tokenizer;
}
}  // namespace gptoss

namespace gptoss::cli {

// generate's arguments, read from its parsed subcommand by option name (-p/--prompt, --tokens,
// --threads, --reasoning, --developer, --date, --raw, --hide-analysis): refuses an empty -p or
// --tokens, a negative --threads and an unknown --reasoning; warns about harmony options given
// with --tokens (they do not apply) and about invalid UTF-8 in -p or --developer (replaced by
// U+FFFD, the count named).
void check_generate_args(const CLI::App& generate);

// A tokenizer whose vocabulary differs from the model's, in one line naming both sizes; empty
// when they agree.
std::string vocab_mismatch(int tokenizer_vocab, int model_vocab);

// The prompt's ids against the model after encoding with `tokenizer` (the archive's): an id
// outside the model's vocabulary is refused naming the tokenizer/model mismatch; a model
// vocabulary larger than the tokenizer's gets a warning (such generated ids cannot be printed).
void check_prompt_vocab(const tok::Tokenizer& tokenizer, std::span<const int> prompt,
                        const ModelConfig& config, const std::string& label);

}  // namespace gptoss::cli
