// bench_cli.h — the bench subcommands bench/ adds to the `gptoss` CLI (host/cli/main.cpp and
// host/cli/tokenize_cli.cpp call them). Declared here, not in host/cli/cli.h, so that bench/ sits
// below host/cli/ and includes nothing from it.
#pragma once

#include <string>
#include <vector>

#include "model/expert_mode.h"

namespace CLI {
class App;
}

namespace gptoss::cli {

void add_bench_command(CLI::App& app);            // bench/bench_cli.cpp: `bench tpot`
void add_tokenizer_bench_command(CLI::App& app);  // bench/bench_tokenizer.cpp (hidden)

// The benches' --experts list (e.g. {"bf16", "fp8"}), parsed once; throws gptoss::Error naming the
// flag and the bad value.
std::vector<ExpertMode> parse_experts_flag(const std::vector<std::string>& names);

}  // namespace gptoss::cli
